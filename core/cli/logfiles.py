"""The log files ``corral logs`` shows: which ones, their last lines merged in time
order (:func:`backlog`), and where following a file found later starts.

A line's time is the one written in it (:func:`corral.cli.logtail.time_reader`); a
line without one takes the time of the line before it in the same file, or, for
the lines before the first timed one, the file's modification time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from corral.cli.logtail import (
    FollowedFile,
    iso_time,
    last_lines,
    open_log,
    order_keys,
    time_reader,
)

DAEMON = "corral"  # the TARGET, app and stream name of the daemon's own log


@dataclass
class Source:
    """One log file and who writes it."""

    path: str
    app: str
    pm_id: int | None
    stream: str  # out, err or corral
    read_time: Callable[[str], float | None]
    follower: FollowedFile = field(init=False)

    def __post_init__(self) -> None:
        self.follower = FollowedFile(self.path, self.app, self.stream)

    @property
    def prefix(self) -> str:
        return DAEMON if self.pm_id is None else f"{self.pm_id}|{self.app}"


@dataclass
class Entry:
    source: Source
    line: str
    time: float | None  # the time written in the line, or None
    key: float = 0.0  # the time it is ordered by


def _options(info: Any) -> dict[str, Any]:
    options = getattr(info, "options", None)
    if isinstance(options, dict):
        return options
    env = getattr(info, "pm2_env", None)
    return env if isinstance(env, dict) else {}


def _daemon_time(line: str) -> float | None:
    if not line.startswith("{"):
        return None
    try:
        return iso_time(json.loads(line).get("timestamp"))
    except (ValueError, AttributeError):
        return None


def select_sources(
    infos: list[Any], *, only: str | None, home: str | os.PathLike | None
) -> list[Source]:
    """The files to show, each path once; with ``home``, the daemon's ``corral.log`` first."""
    sources: list[Source] = []
    if home is not None:
        sources.append(Source(os.path.join(home, "corral.log"), DAEMON, None, DAEMON, _daemon_time))
    seen: set[str] = set()
    for info in sorted(infos, key=lambda i: i.pm_id):
        reader = time_reader(_options(info))
        for stream, path in (("out", info.out_log), ("err", info.err_log)):
            if not path or path == os.devnull or path in seen or (only and only != stream):
                continue
            seen.add(path)
            sources.append(Source(path, info.name, info.pm_id, stream, reader))
    return sources


def backlog(sources: list[Source], count: int) -> list[Entry]:
    """The last ``count`` lines of every source in time order; each source is left
    following from just after its last complete line."""
    entries: list[Entry] = []
    for source in sources:
        handle = open_log(source.path)
        if handle is None:
            continue
        size = os.fstat(handle.fileno()).st_size
        mtime = os.fstat(handle.fileno()).st_mtime
        lines, stop = last_lines(handle, size, count)
        source.follower.start_at(stop, handle)
        timed = [Entry(source, line, source.read_time(line)) for line in lines]
        for entry, key in zip(timed, order_keys([e.time for e in timed], mtime), strict=True):
            entry.key = key
        entries.extend(timed)
    entries.sort(key=lambda e: e.key)  # stable: each file keeps its order
    return entries


def snapshot_dirs(sources: list[Source]) -> dict[str, tuple[int, int]]:
    """(inode, size) of every file in the sources' directories, as they are now."""
    found: dict[str, tuple[int, int]] = {}
    for folder in {os.path.dirname(s.path) for s in sources}:
        try:
            with os.scandir(folder) as listing:
                for item in listing:
                    if item.is_file(follow_symlinks=False):
                        st = item.stat(follow_symlinks=False)
                        found[item.path] = (st.st_ino, st.st_size)
        except OSError:
            continue
    return found


def start_new(source: Source, snapshot: dict[str, tuple[int, int]]) -> None:
    """Follow a file found after ``logs`` started: from where it ended then, if it
    existed, else from its start."""
    handle = open_log(source.path)
    if handle is None:
        source.follower.start_at(0)
        return
    before = snapshot.get(source.path)
    same = before is not None and before[0] == os.fstat(handle.fileno()).st_ino
    source.follower.start_at(before[1] if same and before else 0, handle)
