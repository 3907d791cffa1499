"""One open app log file: whole lines appended, and dropped, never blocking, on a full disk.

A file that cannot be written (a full disk) never stops the daemon reading
the pipes, so the app never blocks on its output: the lines are dropped and
counted (``LogFile.dropped_lines``, shown by ``describe()``), the daemon logs
the first failure and the first write that works again, and no half line is
left behind (:meth:`LogFile.write`). Where a log lives and the registry of the
open files are :mod:`corral.supervisor.logs`'.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# O_NOFOLLOW: a log is never opened through a symbolic link, which whoever can write the
# directory could point at any file; O_NOCTTY: a tty named as a log never becomes ours;
# O_NONBLOCK: a fifo put there by whoever owns the directory fails the open (ENXIO, no
# reader) instead of blocking the daemon for ever, and a full one drops lines (no effect on files).
OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_APPEND
    | os.O_CREAT
    | os.O_CLOEXEC
    | os.O_NOFOLLOW
    | os.O_NOCTTY
    | os.O_NONBLOCK
)
FILE_MODE = 0o640
_FOREIGN = object()  # the owner of an unfinished line found at the end of a file


class LogFile:
    """One append-mode file descriptor, shared by every writer of that path.

    A write never raises. One that fails (a full disk, an I/O error) drops its
    data and starts a *failing streak*: ``on_error(log, exc)`` is called once,
    when the streak starts, and ``on_resume(log, lines, nbytes, seconds)`` once,
    when a write succeeds again, with what the streak dropped. Lines stay whole:
    a write cut short by a filling disk is cut back to its last newline.

    While a streak of ENOSPC lasts, a write is only tried when the file system
    has a free block. The slack left at the end of the file's last block would
    otherwise take a short line now and then, and each such line would end the
    streak and start another (two records in corral.log per line).
    """

    path: Path  # where it was opened; reopen() opens this path again
    error: OSError | None  # the last write's (or reopen's) error, None once a write succeeds
    errors: int  # writes failed or dropped, and reopens failed, since the file was opened
    dropped: int  # bytes lost to failed writes
    dropped_lines: int  # lines lost to failed writes (a line cut in the middle is lost whole)
    failing_since: float | None  # time.time() the current failing streak began, else None
    users: int  # acquire() calls not yet released (kept by LogFiles)

    def __init__(
        self,
        path: Path,
        *,
        on_error: Callable[[LogFile, OSError], None] | None = None,
        on_resume: Callable[[LogFile, int, int, float], None] | None = None,
        mode: int = FILE_MODE,
        opener: Callable[[], int] | None = None,
    ) -> None:
        """``opener`` returns a new descriptor of ``path`` (at first and on each reopen);
        by default ``path`` is opened for appending, never through a symbolic link."""
        self.path = path if isinstance(path, Path) else Path(path)  # not a copy per file
        self.error = None
        self.errors = 0
        self.dropped = 0
        self.dropped_lines = 0
        self.failing_since = None
        self.users = 0
        self._on_error = on_error
        self._on_resume = on_resume
        self._streak_start = (0, 0)  # (dropped, dropped_lines) when the streak began
        self._torn = False  # a cut line could not be taken back: start the next write on a new line
        # (fd, owner): whose unfinished line ends the file open as fd; owner None: a whole line
        # does, _FOREIGN: a line nobody here wrote. Another fd (opened or reopened since): unknown.
        self._open_line: tuple[int | None, object] = (None, None)
        self._opener = opener or (lambda: os.open(self.path, OPEN_FLAGS, mode))
        self._fd: int | None = self._opener()

    def __repr__(self) -> str:
        return f"<LogFile {str(self.path)!r} fd={self._fd}>"

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError(f"log file {self.path} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, data: bytes, owner: object = None) -> None:
        """Append ``data``; on an error drop it and go on, never raise.

        ``data`` may end without a newline: the line stays open for ``owner``
        (a :class:`LineWriter`), whose next write continues it. A write of anyone
        else first ends that line with a newline, so two writers never share one.
        """
        if self._torn or self._line_owner() not in (None, owner):
            data = b"\n" + data
        if self._out_of_space():
            self._drop(None, len(data), data.count(b"\n"))
            return
        view = memoryview(data)
        done = 0
        try:
            if self._fd is None:
                raise OSError(errno.EBADF, f"log file {self.path} is closed")
            while done < len(data):
                try:
                    written = os.write(self._fd, view[done:])
                except InterruptedError:
                    continue
                if written == 0:  # never on a regular file; a device could spin here forever
                    raise OSError(errno.EIO, f"log file {self.path} accepts no more bytes")
                done += written
        except OSError as exc:
            kept = self._cut_torn_line(data, done)
            if kept:
                self._open_line = (self._fd, None)
            self._drop(exc, len(data) - kept, data.count(b"\n", kept))
            return
        self._torn = False
        self._open_line = (self._fd, None if data.endswith(b"\n") else owner)
        self.error = None
        if self.failing_since is not None:
            self._resumed()

    def holds_line_of(self, owner: object) -> bool:
        """Whether the file ends in an unfinished line ``owner`` wrote (and may continue)."""
        return owner is not None and self._line_owner() is owner

    def _line_owner(self) -> object:
        fd, owner = self._open_line
        if fd != self._fd:  # opened (or reopened) since: look at the file's last byte, once
            owner = _FOREIGN if self._ends_unfinished() else None
            self._open_line = (self._fd, owner)
        return owner

    def _ends_unfinished(self) -> bool:
        """Whether the file's last byte is not a newline (a line someone left open)."""
        try:
            info = os.fstat(self.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
                return False
            # the fd is write-only: read the same open file through /proc (Linux)
            fd = os.open(f"/proc/self/fd/{self.fileno()}", os.O_RDONLY | os.O_CLOEXEC)
        except (OSError, ValueError):
            return False
        try:
            return os.pread(fd, 1, info.st_size - 1) not in (b"\n", b"")
        except OSError:
            return False
        finally:
            os.close(fd)

    def _out_of_space(self) -> bool:
        """Whether the disk that refused the streak's writes still has no free block."""
        if self.failing_since is None or self.error is None or self.error.errno != errno.ENOSPC:
            return False
        try:
            fs = os.fstatvfs(self.fileno())
        except (OSError, ValueError):
            return False
        # root may also fill the blocks reserved for it, which f_bavail leaves out
        return (fs.f_bfree if os.geteuid() == 0 else fs.f_bavail) == 0

    def _cut_torn_line(self, data: bytes, done: int) -> int:
        """How much of ``data`` stays in the file once a write stopped after ``done`` bytes.

        A disk filling up takes part of a write, ending anywhere in a line. The
        bytes after the last newline written are truncated away, so the next line
        starts the file's next line instead of finishing half of this one.
        """
        keep = data.rfind(b"\n", 0, done) + 1
        if keep == done:
            return keep
        try:
            end = os.lseek(self.fileno(), 0, os.SEEK_CUR)  # O_APPEND: just past our bytes
            os.ftruncate(self.fileno(), end - (done - keep))
        except (OSError, ValueError):
            self._torn = True  # not a file one can cut (a pipe, a tty): the half line stays
            return done
        return keep

    def _drop(self, exc: OSError | None, lost: int, lost_lines: int) -> None:
        self.errors += 1
        starts = self.failing_since is None
        if starts:
            self.failing_since = time.time()
            self._streak_start = (self.dropped, self.dropped_lines)
        self.dropped += lost
        self.dropped_lines += lost_lines
        if exc is not None:  # None: dropped untried, within a streak already reported
            self.error = exc
            if starts:
                _report(self._on_error, self, exc)

    def _resumed(self) -> None:
        since, self.failing_since = self.failing_since or time.time(), None
        nbytes = self.dropped - self._streak_start[0]
        lines = self.dropped_lines - self._streak_start[1]
        _report(self._on_resume, self, lines, nbytes, time.time() - since)

    def status(self) -> dict[str, Any]:
        """What went wrong with this file, for ``describe()``: path, error, lines and bytes
        dropped since it was opened, and when the current failing streak began (ms)."""
        since = self.failing_since
        return {
            "path": str(self.path),
            "error": (self.error.strerror or str(self.error)) if self.error else None,
            "lines": self.dropped_lines,
            "bytes": self.dropped,
            "failing_since": int(since * 1000) if since is not None else None,
        }

    def reopen(self) -> None:
        """Open the same path again (after an external rename); the old fd is closed.

        If the path cannot be opened the old file keeps receiving lines and the
        error is recorded in ``error``; OSError is raised to the caller.
        """
        try:
            fd = self._opener()
        except OSError as exc:
            self.error = exc
            self.errors += 1
            raise
        old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)

    def truncate(self) -> None:
        """Empty the file (``flush``); appends go on from offset 0 on the same fd."""
        os.ftruncate(self.fileno(), 0)
        self._open_line = (self._fd, None)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _report(callback: Callable[..., None] | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # a failing reporter must not turn a lost chunk into a crash
        pass
