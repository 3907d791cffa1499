"""The installed plugins' entry points, kept in a small cache file so that a daemon's
start neither imports importlib.metadata nor scans every installed distribution.

Importing importlib.metadata (email, zipfile, csv...) and scanning each distribution
of ``sys.path`` is a good part of a daemon's start. A caller that names a cache file
(the daemon: one per user and Python environment, see corral.paths.plugins_cache)
reads the group's entry points from it while ``sys.path`` and the modification time
of each of its directories (but the working directory: a daemon's is its home, whose
time changes with every file it writes) are what they were at the scan: installing,
upgrading or removing a distribution adds or removes its ``.dist-info`` directory,
which changes its parent's time, and the next call scans again and rewrites the file.
A cache that cannot be read or written is no error: the entry points are then
scanned, as without one.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

FORMAT = 1  # of the cache file: another value is scanned again
RACY_NS = 2_000_000_000  # a scan this soon after a directory changed is not cached


@dataclass(frozen=True)
class Dist:
    """The distribution an entry point came from, as the cache keeps it."""

    name: str
    version: str


@dataclass(frozen=True)
class Entry:
    """An entry point read from the cache: what the daemon uses of
    :class:`importlib.metadata.EntryPoint` (``name``, ``value``, ``dist``, ``load``)."""

    name: str
    value: str
    dist: Dist | None

    def load(self) -> Any:
        """The object the entry point names (``module`` or ``module:attr.attr``)."""
        module, _, attrs = self.value.partition(":")
        found = importlib.import_module(module.strip())
        for attr in filter(None, attrs.strip().split(".")):
            found = getattr(found, attr)
        return found


def entry_points(group: str, cache: Path | None = None) -> dict[str, Any]:
    """The entry points of ``group`` by name: from ``cache`` while it is fresh, else
    scanned (and written to ``cache``, when given)."""
    key = _key()
    if cache is not None:
        found = _read(cache, group, key)
        if found is not None:
            return found
    from importlib import metadata  # deferred: ~10 ms of imports, only for a scan

    scanned = {ep.name: ep for ep in metadata.entry_points(group=group)}
    if cache is not None:
        _write(cache, group, key, scanned)
    return scanned


def _key() -> list[Any]:
    """What the scan depends on: the interpreter, ``sys.path`` and each directory's
    modification time, but the working directory's (see the module)."""
    cwd = os.getcwd()
    key: list[Any] = [sys.executable]
    for entry in sys.path:
        path = os.path.abspath(entry or os.curdir)
        if path == cwd:
            key.append("cwd")  # which directory it is varies with the home, too
            continue
        try:
            key.append([path, os.stat(path).st_mtime_ns])
        except OSError:
            key.append([path, None])
    return key


def _read(cache: Path, group: str, key: list[Any]) -> dict[str, Entry] | None:
    try:
        with open(cache, "rb") as f:
            info = os.fstat(f.fileno())
            if info.st_uid != os.geteuid() or info.st_mode & 0o022:
                return None  # another user's, or writable by others: not trusted
            data = json.load(f)
        if data["format"] != FORMAT or data["key"] != key or group not in data["groups"]:
            return None
        return {
            name: Entry(name, value, Dist(*dist) if dist else None)
            for name, value, dist in data["groups"][group]
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write(cache: Path, group: str, key: list[Any], scanned: dict[str, Any]) -> None:
    # a directory changed in the last seconds may change again within the same tick of
    # the file system's clock, unseen: such a scan is not kept (as git's "racy" index)
    recent = time.time_ns() - RACY_NS
    if any(isinstance(k, list) and k[1] is not None and k[1] > recent for k in key):
        return
    rows = []
    for name, ep in scanned.items():
        dist = getattr(ep, "dist", None)
        rows.append([name, ep.value, [dist.name, dist.version] if dist is not None else None])
    body = json.dumps({"format": FORMAT, "key": key, "groups": {group: rows}}).encode()
    temporary = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, body)
        finally:
            os.close(fd)
        os.replace(temporary, cache)  # whole: a reader never sees half of it
    except (OSError, TypeError, AttributeError):
        try:
            os.unlink(temporary)
        except OSError:
            pass
