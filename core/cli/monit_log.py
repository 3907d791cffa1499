"""The log pane of ``corral monit``: one app's out and err lines merged in time order.

The daemon writes each stream of an app to its own file, whole lines (see
:mod:`corral.supervisor.lines`), so which line came first is known in two ways only:

- **dates**: with ``time`` or ``log_date_format`` the daemon starts every line
  with ``"<date>: "``. When the format renders fixed-width strings whose order
  is the order of time (``YYYY-MM-DD HH:mm:ss.SSS``, or ``YYYY-MM-DDTHH:mm:ss``
  of ``time``; :func:`sortable_width` checks it), lines are merged by that prefix, to the
  format's finest unit: lines of the two streams within one unit show out first.
  ``log_type: json`` lines are merged by their ``timestamp`` (ISO 8601 UTC with
  milliseconds by default) and show their ``message``.
- **arrival**: while the app is selected, both files are read incrementally
  (only the bytes added since the last read, every :data:`POLL` seconds); when
  both grew between two reads, the one whose file changed last comes last.

Lines already in undated files when the app is selected cannot be interleaved
(nothing records their order): they are shown as two blocks, the file changed
last coming last. A combined ``log_file`` or a date format gives the exact order.
"""

from __future__ import annotations

import functools
import heapq
import json
import os
from collections import deque
from collections.abc import Iterable
from typing import Any, BinaryIO

from corral.cli.logtail import open_log
from corral.datefmt import date_formatter, line_date_format

POLL = 0.2  # seconds between two reads of the selected app's files
KEEP = 500  # lines kept for the pane

ISO_WIDTH = 24  # 2026-01-01T10:00:00.000Z, the timestamp of json log lines
Line = tuple[str, str, str]  # (stream, text, sort key: the date prefix or "")


@functools.lru_cache(maxsize=16)
def sortable_width(fmt: str) -> int | None:
    """The width of ``fmt``'s dates if every date has that width and sorts as time
    does (checked on dates from 1999 to 2038, every unit changing); else None."""
    try:
        render = date_formatter(fmt)
    except Exception:  # a bad format: the daemon refused it, the lines have no date
        return None
    base = 946_684_799.5  # 1999-12-31 23:59:59.5 UTC
    steps = (0.001, 0.01, 0.1, 1, 9, 60, 600, 3600, 36000, 86400, 864000, 2_678_400, 31_536_000)
    times = sorted({base + k * step for step in steps for k in range(0, 13)} | {2_000_000_000.0})
    shown = [render(t) for t in times]
    if len({len(s) for s in shown}) != 1:
        return None
    if shown != sorted(shown):
        return None
    return len(shown[0])


def date_width(options: dict[str, Any]) -> int | None:
    """The width of the ``"<date>"`` prefix the daemon writes for an app, if sortable
    (with ``log_type: json``, of the ``timestamp`` field: ISO 8601 UTC unless
    ``log_date_format`` is given)."""
    if options.get("log_type") == "json" and not options.get("log_date_format"):
        return ISO_WIDTH
    fmt = line_date_format(options)
    return sortable_width(fmt) if fmt else None


class TailedFile:
    """One log file read from where it was when opened: its last lines first, then
    only what is appended; reopened when it is rotated (new inode) or truncated."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._handle: BinaryIO | None = None
        self._inode: int | None = None
        self._partial = b""
        self.mtime = 0.0
        self._open()

    def _open(self) -> bool:
        handle = open_log(self.path)
        if handle is None:
            return False
        self.close()
        self._handle = handle
        info = os.fstat(handle.fileno())
        self._inode, self.mtime = info.st_ino, info.st_mtime
        return True

    def last(self, count: int) -> list[str]:
        """The last ``count`` complete lines before the current position."""
        if self._handle is None or count <= 0:
            return []
        end = self._handle.seek(0, os.SEEK_END)
        position, data = end, b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(65536, position)
            position -= step
            self._handle.seek(position)
            data = self._handle.read(step) + data
        self._handle.seek(end)
        *complete, self._partial = data.split(b"\n")
        return [_text(line) for line in complete[-count:]]

    def new_lines(self) -> list[str]:
        """The complete lines appended since the last call."""
        try:
            info = os.stat(self.path)
        except OSError:
            return []
        data = b""
        if self._handle is not None and info.st_ino == self._inode:
            if info.st_size < self._handle.tell():  # truncated in place (flush)
                self._handle.seek(0)
                self._partial = b""
            elif info.st_size == self._handle.tell():
                return []
            data = self._handle.read()
        elif self._open():  # created, or rotated by rename: the new file from its start
            self._partial = b""
            data = self._handle.read() if self._handle is not None else b""
        self.mtime = info.st_mtime
        *complete, self._partial = (self._partial + data).split(b"\n")
        return [_text(line) for line in complete]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _record(line: str) -> tuple[str, str]:
    """(message, timestamp) of a ``log_type: json`` line; the line itself if it is not one."""
    try:
        record = json.loads(line)
    except ValueError:
        return line, ""
    if not isinstance(record, dict) or not isinstance(record.get("message"), str):
        return line, ""
    return record["message"], str(record.get("timestamp", ""))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")


class MergedLog:
    """The out and err lines of one app, merged as the module says, newest last."""

    def __init__(self, info: Any, keep: int = KEEP) -> None:
        self.pm_id = info.pm_id
        self.paths = (info.out_log, info.err_log)
        options = info.options or {}
        self.width = date_width(options)
        self.json = options.get("log_type") == "json"
        self.lines: deque[Line] = deque(maxlen=keep)
        self._keys = {"out": "", "err": ""}  # the last date seen per stream
        self._files: list[tuple[str, TailedFile]] = []
        for stream, path in (("out", info.out_log), ("err", info.err_log)):
            if path and path != os.devnull and path not in (p.path for _, p in self._files):
                self._files.append((stream, TailedFile(path)))
        blocks = [(s, f.mtime, f.last(keep)) for s, f in self._files]
        if self.width is None:  # undated: the file changed last comes last
            blocks.sort(key=lambda block: block[1])
        self._add([(s, lines) for s, _, lines in blocks])

    def matches(self, info: Any) -> bool:
        return info.pm_id == self.pm_id and (info.out_log, info.err_log) == self.paths

    def poll(self) -> bool:
        """Read what the files gained; True if a line was added."""
        fresh = [(stream, f.new_lines(), f.mtime) for stream, f in self._files]
        if self.width is None:  # both grew within one read: the file changed last comes last
            fresh.sort(key=lambda block: block[2])
        self._add([(stream, lines) for stream, lines, _ in fresh])
        return any(lines for _, lines, _ in fresh)

    def _add(self, blocks: list[tuple[str, list[str]]]) -> None:
        keyed = [list(self._keyed(stream, lines)) for stream, lines in blocks]
        if self.width is None:
            for block in keyed:
                self.lines.extend(block)
        else:  # by date; equal dates keep the order given (out first), heapq.merge is stable
            self.lines.extend(heapq.merge(*keyed, key=lambda line: line[2]))

    def _keyed(self, stream: str, lines: Iterable[str]) -> Iterable[Line]:
        width = self.width
        for text in lines:
            if self.json:
                text, date = _record(text)
                if width is not None and len(date) == width:
                    self._keys[stream] = date
            elif width is not None and text[width : width + 2] == ": ":
                self._keys[stream] = text[:width]
            yield (stream, text, self._keys[stream])  # an undated piece keeps the last date

    def close(self) -> None:
        for _, tailed in self._files:
            tailed.close()
