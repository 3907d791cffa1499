"""One app log file: whole lines appended, and dropped, never blocking, on a full disk.

A file that cannot be written (a full disk) never stops the daemon reading
the pipes, so the app never blocks on its output: the lines are dropped and
counted (``LogFile.dropped_lines``, shown by ``describe()``), the daemon logs
the first failure and the first write that works again, and no half line is
left behind (:meth:`LogFile.write`). Where a log lives and the registry of the
open files are :mod:`corral.supervisor.logs`'.

A file of the registry holds a descriptor only while it is written: it is opened
on its first write, and closed again when the registry's bound on open log files
(or an idle minute) evicts it; its next write opens its path again, O_APPEND, with
the same checks. A partial line left open at the eviction is continued on reopen.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corral.supervisor.logs import LogFiles

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
_EVICTED = -1  # _open_line's generation while closed by an eviction, the owner kept
OPEN_RETRY = 1.0  # seconds between two tries to open a file whose open failed


class LogFile:
    """One append-mode file, shared by every writer of that path.

    A write never raises. One that fails (a full disk, an I/O error) drops its
    data and starts a *failing streak*: ``on_error(log, exc)`` is called once,
    when the streak starts, and ``on_resume(log, lines, nbytes, seconds)`` once,
    when a write succeeds again, with what the streak dropped. Lines stay whole:
    a write cut short by a filling disk is cut back to its last newline.

    While a streak of ENOSPC lasts, a write is only tried when the file system
    has a free block. The slack left at the end of the file's last block would
    otherwise take a short line now and then, and each such line would end the
    streak and start another (two records in corral.log per line).

    With a ``pool`` (the :class:`~corral.supervisor.logs.LogFiles` registry) the file is
    opened on its first write and may be closed (:meth:`evict`) between writes; a
    failure to open it is a failed write (dropped, counted, reported once per streak),
    retried at most every :data:`OPEN_RETRY` seconds. Without one it is opened at once
    and stays open until :meth:`close`.
    """

    __slots__ = (
        "_done",
        "_fd",
        "_gen",
        "_on_error",
        "_on_resume",
        "_open_line",
        "_opener",
        "_pool",
        "_retry_at",
        "_streak_start",
        "_torn",
        "dropped",
        "dropped_lines",
        "error",
        "errors",
        "failing_since",
        "path",
        "users",
    )

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
        pool: LogFiles | None = None,
    ) -> None:
        """``opener`` returns a new descriptor of ``path`` (at each open and reopen);
        by default ``path`` is opened for appending, never through a symbolic link.
        ``pool``: open lazily, and tell it of every open and write (see the class)."""
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
        # (generation, owner): whose unfinished line ends the file as opened the generation-th
        # time; owner None: a whole line does, _FOREIGN: a line nobody here wrote. Another
        # generation (opened or reopened since): unknown; _EVICTED: closed, owner as it was.
        self._open_line: tuple[int, object] = (0, None)
        self._gen = 0
        self._opener = opener or (lambda: os.open(self.path, OPEN_FLAGS, mode))
        self._pool = pool
        self._done = False  # closed for good (close())
        self._retry_at = 0.0  # monotonic time before which a failed open is not tried again
        self._fd: int | None = None
        if pool is None:
            self._fd = self._opener()
            self._gen = 1

    def __repr__(self) -> str:
        return f"<LogFile {str(self.path)!r} fd={self._fd}>"

    def fileno(self) -> int:
        """The descriptor, the file opened if it is not (OSError if it cannot be);
        ValueError once closed for good."""
        if self._fd is None:
            if self._done or self._pool is None:
                raise ValueError(f"log file {self.path} is closed")
            self._open()
        return self._fd  # type: ignore[return-value]

    @property
    def closed(self) -> bool:
        """Closed for good (:meth:`close`); a file only not open now is not closed."""
        return self._done or (self._fd is None and self._pool is None)

    @property
    def is_open(self) -> bool:
        """Whether it holds a descriptor now."""
        return self._fd is not None

    def _open(self) -> None:
        """Open the path (a file of a pool that holds no descriptor now)."""
        assert self._pool is not None
        try:
            fd = self._opener()
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE) or not self._pool.shed():
                raise
            fd = self._opener()  # the pool closed some of its files: once more
        self._fd = fd
        self._gen += 1
        self._pool.opened(self)

    def evict(self) -> None:
        """Close the descriptor until the next write (the pool's bound or idle time);
        the owner of a line left open is kept, to be continued after the reopen."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        gen, owner = self._open_line
        if gen == self._gen:
            try:  # the file as it is left: found so on reopen, its last byte needs no read
                info = os.fstat(fd)
                left = (info.st_dev, info.st_ino, info.st_size)
            except OSError:
                left = None
            self._open_line = (_EVICTED, (owner, left))
        os.close(fd)

    def write(self, data: bytes, owner: object = None) -> None:
        """Append ``data``; on an error drop it and go on, never raise.

        ``data`` may end without a newline: the line stays open for ``owner``
        (a :class:`LineWriter`), whose next write continues it. A write of anyone
        else first ends that line with a newline, so two writers never share one.
        """
        if self._pool is not None and not self._done:
            if self._fd is None and not self._opened_now(data):
                return
            self._pool.touch(self)
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
                self._open_line = (self._gen, None)
            self._drop(exc, len(data) - kept, data.count(b"\n", kept))
            return
        self._torn = False
        self._open_line = (self._gen, None if data.endswith(b"\n") else owner)
        self.error = None
        if self.failing_since is not None:
            self._resumed()

    def _opened_now(self, data: bytes) -> bool:
        """Open the file for a write of ``data``; on failure drop ``data``: False."""
        if time.monotonic() < self._retry_at and self.failing_since is not None:
            self._drop(None, len(data), data.count(b"\n"))  # within a streak reported
            return False
        try:
            self._open()
        except OSError as exc:
            self._retry_at = time.monotonic() + OPEN_RETRY
            self._drop(exc, len(data), data.count(b"\n"))
            return False
        return True

    def holds_line_of(self, owner: object) -> bool:
        """Whether the file ends in an unfinished line ``owner`` wrote (and may continue)."""
        return owner is not None and self._line_owner() is owner

    def _line_owner(self) -> object:
        if self._fd is None and self._pool is not None and not self._done:
            if time.monotonic() < self._retry_at:
                return None  # its open failed a moment ago: the write drops the line
            try:
                self._open()  # evicted: what ends the file now decides
            except OSError:
                return None  # the write fails too, and says why
        gen, owner = self._open_line
        if gen != self._gen:  # opened (or reopened) since: look at the file's last byte, once
            if gen == _EVICTED:  # closed by the pool: a line left open is still its writer's
                owner, left = owner  # type: ignore[misc]
                if left is None or self._identity() != left:  # changed while closed
                    unfinished = self._ends_unfinished()
                    owner = (_FOREIGN if owner is None else owner) if unfinished else None
            else:
                owner = _FOREIGN if self._ends_unfinished() else None
            self._open_line = (self._gen, owner)
        return owner

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            info = os.fstat(self.fileno())
        except (OSError, ValueError):
            return None
        return info.st_dev, info.st_ino, info.st_size

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
        error is recorded in ``error``; OSError is raised to the caller. A file of a
        pool that holds no descriptor now has nothing to do: its next write opens the path.
        """
        if self._fd is None and self._pool is not None:
            return
        try:
            fd = self._opener()
        except OSError as exc:
            self.error = exc
            self.errors += 1
            raise
        old, self._fd = self._fd, fd
        self._gen += 1
        self._done = False
        if old is not None:
            os.close(old)
        if self._pool is not None:
            self._pool.opened(self)

    def truncate(self) -> None:
        """Empty the file (``flush``); appends go on from offset 0 on the same fd."""
        os.ftruncate(self.fileno(), 0)
        self._open_line = (self._gen, None)

    def close(self) -> None:
        """Close for good: a later write fails (EBADF), dropped and counted."""
        self._done = True
        fd, self._fd = self._fd, None
        if self._pool is not None:
            self._pool.forget(self)
        if fd is not None:
            os.close(fd)


def _report(callback: Callable[..., None] | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # a failing reporter must not turn a lost chunk into a crash
        pass
