"""Files that outlive the daemon: the state file and the dump.

Both are JSON with a schema version, written to a temporary file and renamed
into place, so a reader sees the old file or the new one, never half of one.
The state file is the daemon's own memory (what it runs, with which pids),
rewritten on every change so a daemon killed by SIGKILL can be replaced
without losing or duplicating an app. The dump is what the user saved.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.errors import StateError

SCHEMA_VERSION = 1


def write_atomic(path: Path, payload: Any, *, fsync: bool = False) -> None:
    """``payload`` as JSON in ``path``: readers see the old file or the new one, whole.

    Compact: json's C encoder takes no ``indent``, and the pure-Python one took 0.4 s
    of the loop for the state of 1,000 apps (``python -m json.tool`` shows it indented)."""
    data = json.dumps(payload, default=str, separators=(",", ":")).encode()
    write_atomic_bytes(path, data, fsync=fsync)


def write_atomic_bytes(path: Path, data: bytes, *, fsync: bool = False) -> None:
    os.replace(_write_temp(path, data, fsync=fsync), path)


def _write_temp(path: Path, data: bytes, *, fsync: bool) -> Path:
    """``data`` in a temp file beside ``path``, whole, or OSError and no temp file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:  # a nearly full disk takes part of a write, then refuses the rest
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # the space it holds may be all the disk has left
        raise
    os.close(fd)
    return tmp


def read_json(path: Path, kind: str) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise StateError(f"{kind} {path} is unreadable: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("apps"), list):
        raise StateError(f"{kind} {path} has no 'apps' list")
    if payload.get("version") != SCHEMA_VERSION:
        raise StateError(f"{kind} {path} has schema version {payload.get('version')!r}, expected 1")
    return payload


def save_state(path: Path, apps: list[dict[str, Any]], daemon_pid: int) -> None:
    save_encoded_state(path, [encode_entry(app) for app in apps], daemon_pid)


def encode_entry(entry: dict[str, Any]) -> bytes:
    """One app of the state file, as :func:`save_encoded_state` takes it (compact JSON)."""
    return json.dumps(entry, default=str, separators=(",", ":")).encode()


def save_encoded_state(path: Path, apps: list[bytes], daemon_pid: int) -> None:
    """The state file from apps already encoded (:func:`encode_entry`): the daemon keeps
    each app's bytes until it changes (corral.daemon.statefile), so a write of 1,000
    apps joins bytes instead of encoding 3 MB of JSON on the event loop."""
    head = b'{"version":%d,"daemon_pid":%d,"apps":[' % (SCHEMA_VERSION, daemon_pid)
    write_atomic_bytes(path, b"".join((head, b",".join(apps), b"]}")), fsync=False)


def load_state(path: Path) -> dict[str, Any] | None:
    """The last daemon's state, or None when there is none or it cannot be read."""
    try:
        return read_json(path, "state file")
    except (FileNotFoundError, StateError):
        return None


def save_dump(path: Path, apps: list[dict[str, Any]]) -> Path | None:
    """Write the dump, keeping the previous one as ``<dump>.bak``.

    A previous dump that does not read (torn, garbage, another schema) is moved
    aside to ``<dump>.broken-<time>`` instead, so the good ``.bak`` is never
    replaced by it; returns where it went (None when nothing was broken).
    """
    data = json.dumps({"version": SCHEMA_VERSION, "apps": apps}, indent=2, default=str).encode()
    tmp = _write_temp(path, data, fsync=True)  # a full disk fails here and changes nothing
    aside = None
    if _dump_error(path):
        aside = move_aside(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, backup_of(path))  # renames need no space, unlike a copy
    os.replace(tmp, path)
    return aside


def backup_of(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def _dump_error(path: Path) -> str | None:
    """Why the dump at ``path`` does not read, or None (it reads, or there is none)."""
    try:
        read_json(path, "dump file")
    except FileNotFoundError:
        return None
    except StateError as exc:
        return str(exc)
    return None


def move_aside(path: Path) -> Path:
    """Rename a broken file to ``<name>.broken-<UTC time>`` beside it, and return that."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.broken-{stamp}")
    n = 1
    while aside.exists():  # two in one second: keep both
        aside, n = path.with_name(f"{path.name}.broken-{stamp}-{n}"), n + 1
    os.replace(path, aside)
    return aside


@dataclass
class LoadedDump:
    """What :func:`load_dump` read: the apps, the file, and what the user should know."""

    apps: list[dict[str, Any]]
    source: Path
    warning: str | None = None  # set when the apps came from the .bak


def load_dump(path: Path) -> LoadedDump:
    """The saved apps: from the dump, else from its ``.bak``.

    When the ``.bak`` is used, a broken dump is moved aside (see :func:`move_aside`)
    and ``warning`` says so; nothing is touched when neither file reads.
    """
    backup = backup_of(path)
    errors = []
    for candidate in (path, backup):
        try:
            apps = read_json(candidate, "dump file")["apps"]
        except FileNotFoundError:
            errors.append(f"{candidate} does not exist")
            continue
        except StateError as exc:
            errors.append(str(exc))
            continue
        if candidate == path:
            return LoadedDump(apps, path)
        what = errors[0]
        if path.exists() or path.is_symlink():
            what = f"broken {what}; moved it to {move_aside(path)}"
        return LoadedDump(apps, backup, f"{what}; resurrected from {backup} (the dump before it)")
    raise StateError("nothing to resurrect: " + "; ".join(errors) + " (run `corral dump` first)")


class SpawnJournal:
    """The children spawned since the state file was last written, one JSON line each.

    A daemon killed between a spawn and the next state write would leave that
    child unknown to the next daemon; the journal is appended to right after
    each fork (one small write) and emptied once the state file has the child.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def intent(self, unique_id: str) -> None:
        """Before a fork: a daemon killed inside it leaves a child whose pid was never
        known, found by the ``unique_id`` in its environment."""
        self._write({"unique_id": unique_id})

    def record(self, pid: int, started: Any, kill_timeout: Any) -> None:
        self._write({"pid": pid, "pid_started": started, "kill_timeout": kill_timeout})

    def _write(self, entry: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a full disk: the state write follows at once
            os.write(self._fd, json.dumps(entry).encode() + b"\n")

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)

    def close(self) -> None:
        os.close(self._fd)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The entries of a dead daemon's journal; a torn last line is skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and (
                isinstance(entry.get("pid"), int) or isinstance(entry.get("unique_id"), str)
            ):
                entries.append(entry)
    return entries
