"""Reading log files as ``corral logs`` and ``monit`` do: the last lines of a file,
following it through rotation and truncation, and the time a line was written.

A :class:`FollowedFile` reads by polling. It survives what happens to a log file
under a running daemon:

- rotation by rename (the logrotate plugin, or ``mv`` + ``reload-logs``): the rest
  of the old file is read, then the new file from its start;
- truncation in place (``flush``, ``copytruncate``): reading starts again at 0, even
  when the file has grown past the old position before the next poll (the last
  bytes read are compared with the file's bytes at that place);
- lines are whole: a partial line is held until its newline arrives.

The time of a line comes from what the daemon writes (:mod:`corral.supervisor.lines`): the
``<date>: `` prefix of ``log_date_format`` / ``time``, the ``timestamp`` of a
``log_type: json`` record, or the ``timestamp`` of a corral.log record. A line
without one has no known time (None).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import datetime
from typing import Any, BinaryIO

from corral.datefmt import date_reader, line_date_format

TAIL_BYTES = 16 << 20  # the most of a file's end read for its past lines
READ_BYTES = 16 << 20  # the most read from a followed file per poll
LINE_BYTES = 1 << 20  # a longer line is printed in pieces of this size
CHECK_BYTES = 64  # bytes before the read position compared on every poll (truncate + regrow)

# -- opening and tailing -------------------------------------------------------


def open_log(path: str | os.PathLike) -> BinaryIO | None:
    """``path`` opened for reading if it is a regular file, never through a symbolic
    link (None otherwise): the caller may be root, and an app's user can put a fifo
    (open would hang), a link to root's files, or to ``/dev/zero`` in place of its log."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return open(fd, "rb")


def _decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")


def last_lines(handle: BinaryIO, end: int, count: int) -> tuple[list[str], int]:
    """The last ``count`` complete lines before offset ``end`` of an open file, and
    the offset just after the last of them (where following should start: a partial
    line after it is read whole once its newline arrives)."""
    position, chunks, newlines = end, [], 0
    floor = max(0, end - TAIL_BYTES)  # a sparse GiB or --lines 10**9 reads this much
    while position > floor and newlines <= count:
        step = min(65536, position - floor)
        position -= step
        handle.seek(position)
        chunks.append(handle.read(step))
        newlines += chunks[-1].count(b"\n")
    data = b"".join(reversed(chunks))  # once: joining as it went was quadratic
    complete = data.rfind(b"\n") + 1
    stop = position + complete
    if count <= 0 or complete == 0:
        return [], stop if complete else max(position, end - LINE_BYTES)
    lines = data[: complete - 1].split(b"\n")
    if position > 0:
        lines = lines[1:]  # the first may be the end of a longer line
    return [_decode(line) for line in lines[-count:]], stop


def tail_lines(path: str | os.PathLike, count: int) -> list[str]:
    """The last ``count`` lines of a file, read from its end (``[]`` if it is missing).
    A last line without its newline is included."""
    if count <= 0:
        return []
    handle = open_log(path)
    if handle is None:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        lines, stop = last_lines(handle, end, count)
        if stop < end:
            handle.seek(max(stop, end - (1 << 20)))
            lines.append(_decode(handle.read()))
    return lines[-count:]


# -- following -----------------------------------------------------------------


class FollowedFile:
    """One log file being followed, reopened when it is rotated or truncated.

    ``start_at_end()`` starts after what the file holds now; ``start_at(offset)``
    at a given place (where a tail ended, so no line is lost or shown twice)."""

    def __init__(self, path: str, prefix: str = "", stream: str = "out") -> None:
        self.path = path
        self.prefix = prefix
        self.stream = stream
        self._handle: BinaryIO | None = None
        self._inode: int | None = None
        self._partial = b""
        self._seen = b""  # the last bytes read, to notice a truncated and regrown file

    def start_at_end(self) -> None:
        self._open()
        if self._handle is not None:
            self.start_at(self._handle.seek(0, os.SEEK_END))

    def start_at(self, offset: int, handle: BinaryIO | None = None) -> None:
        """Follow from ``offset`` (``handle``: the file already open, kept)."""
        if handle is not None:
            self._close()
            self._handle, self._inode = handle, os.fstat(handle.fileno()).st_ino
        elif self._handle is None:
            self._open()
        if self._handle is None:
            return
        start = max(0, offset - CHECK_BYTES)
        self._handle.seek(start)
        self._seen = self._handle.read(offset - start)
        self._handle.seek(offset)

    def _open(self) -> None:
        handle = open_log(self.path)
        if handle is None:
            return
        self._close()
        self._handle = handle
        self._inode = os.fstat(handle.fileno()).st_ino
        self._seen = b""

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _rewritten(self, size: int) -> bool:
        """Whether the open file was truncated in place since the last read."""
        assert self._handle is not None
        position = self._handle.tell()
        if size < position:
            return True
        if not self._seen:
            return False
        seen = os.pread(self._handle.fileno(), len(self._seen), position - len(self._seen))
        return seen != self._seen

    def _read(self) -> bytes:
        assert self._handle is not None
        data = self._handle.read(READ_BYTES)  # a file grown by GiBs is read over polls
        if data:
            self._seen = (self._seen + data)[-CHECK_BYTES:]
        return data

    def read_lines(self) -> list[str]:
        """The complete lines written since the last call."""
        data = b""
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if self._handle is not None:
            if st is not None and st.st_ino == self._inode and self._rewritten(st.st_size):
                self._handle.seek(0)  # truncated in place (flush, copytruncate)
                self._seen, self._partial = b"", b""
            data = self._read()
        if st is not None and (self._handle is None or st.st_ino != self._inode):
            self._open()  # created, or rotated by rename: read the new file whole
            if self._handle is not None:
                data += self._read()
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        while len(self._partial) > LINE_BYTES:  # a line never ending is not held whole
            complete.append(self._partial[:LINE_BYTES])
            self._partial = self._partial[LINE_BYTES:]
        return [_decode(line) for line in complete]

    def close(self) -> None:
        self._close()


# -- the time of a line --------------------------------------------------------


def iso_time(value: Any) -> float | None:
    """An ISO 8601 string (``Z`` or an offset, or local time) as a Unix time."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def order_keys(times: list[float | None], mtime: float) -> list[float]:
    """The time each line of a file is ordered by, from the times written in them
    (None: none): a line without one takes the time of the line before it, and the
    lines before the first timed one take the file's modification time ``mtime``."""
    known = next((t for t in times if t is not None), mtime)
    keys = []
    for written in times:
        known = written if written is not None else known
        keys.append(known)
    return keys


def time_reader(options: dict[str, Any]) -> Callable[[str], float | None]:
    """A function from one of the app's log lines to the time it was written (or None),
    from the app's ``log_date_format`` / ``time`` / ``log_type`` options."""
    fmt = line_date_format(options)
    prefix_time = date_reader(fmt) if fmt else None
    as_json = options.get("log_type") == "json"

    def read(line: str) -> float | None:
        if as_json and line.startswith("{"):
            try:
                stamp = json.loads(line).get("timestamp")
            except (ValueError, AttributeError):
                return None
            if prefix_time is not None and isinstance(stamp, str):
                return prefix_time(stamp + ": ")
            return iso_time(stamp)
        return prefix_time(line) if prefix_time is not None else None

    return read
