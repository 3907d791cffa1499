"""The app log files: where they live, how lines reach them, and the open files.

The daemon reads each child's stdout/stderr pipes and hands every chunk to a
:class:`~corral.lines.LineWriter`, one per (process, stream). The writer holds a partial
line until its newline arrives and writes whole lines only, so the out and
err streams of an app can share one file (and a combined ``log_file``)
without a line of one landing inside a line of the other. Bytes go through
untouched: invalid UTF-8 and NUL bytes reach the file as the app wrote them.

Every open file is a :class:`LogFile` kept in one :class:`LogFiles` registry,
one per resolved path however many writers use it, so ``flush`` truncates it
and ``reload_logs`` (after an external ``mv``) reopens it in one place.

Everything here is synchronous and blocks on nothing but a local file write:
the daemon calls it from the event loop.

A file that cannot be written (a full disk) never stops the daemon reading
the pipes, so the app never blocks on its output: the lines are dropped and
counted (``LogFile.dropped_lines``, shown by ``describe()``), the daemon logs
the first failure and the first write that works again, and no half line is
left behind (:meth:`LogFile.write`).

Paths follow PM2 (``lib/Common.js`` ``prepareAppConf`` and ``God.executeApp``):
``$CORRAL_HOME/logs/<name>-out.log`` and ``<name>-error.log``, with
``-<pm_id>`` before ``.log`` unless ``merge_logs``. Where corral differs:

- PM2 writes each pipe read as it comes, so an out line can land inside an
  err line and its date prefix mid-line; corral writes whole lines, up to
  1 MiB (:data:`~corral.lines.MAX_LINE`); a longer one is cut in pieces of
  1 MiB. A partial line is written after 0.1 s without its newline and
  continued by the next write (:meth:`LogFile.write`'s ``owner``).
- A user-given ``app-2024.log`` becomes ``app-2024-<pm_id>.log``; PM2 replaces
  a trailing ``-<digits>`` with the id (``app-<pm_id>.log``).
- ``log_type: json`` writes one record per line, its ``message`` without the
  newline, invalid UTF-8 replaced by U+FFFD; PM2 writes one per pipe read.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import asuser
from .credentials import Credentials
from .lines import MAX_LINE, LineWriter

__all__ = ["MAX_LINE", "LineWriter", "LogFile", "LogFiles", "log_paths", "pid_path", "safe_name"]

# O_NOFOLLOW: a log is never opened through a symbolic link, which whoever can write the
# directory could point at any file; O_NOCTTY: a tty named as a log never becomes ours;
# O_NONBLOCK: a fifo put there by whoever owns the directory fails the open (ENXIO, no
# reader) instead of blocking the daemon for ever, and a full one drops lines (no effect on files).
_OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_APPEND
    | os.O_CREAT
    | os.O_CLOEXEC
    | os.O_NOFOLLOW
    | os.O_NOCTTY
    | os.O_NONBLOCK
)
_FILE_MODE = 0o640
_NULL_PATHS = frozenset(("NULL", os.devnull))
_FOREIGN = object()  # the owner of an unfinished line found at the end of a file


# -- paths -------------------------------------------------------------------


def safe_name(name: str) -> str:
    """The app name as PM2 puts it in file names: ``[^a-zA-Z0-9.-]`` becomes ``-``."""
    return re.sub(r"[^a-zA-Z0-9.\-]", "-", name)


def is_null_path(value: Any) -> bool:
    """Whether a log or pid file option says "no file": ``NULL`` or ``/dev/null``, as PM2."""
    return isinstance(value, (str, os.PathLike)) and os.fspath(value) in _NULL_PATHS


def _user_path(value: Any, options: Mapping[str, Any]) -> Path:
    """``~`` expanded, then resolved against the app's ``cwd`` (the daemon's when unset)."""
    path = Path(os.path.expanduser(os.fspath(value)))
    cwd = options.get("cwd")
    base = Path(os.path.expanduser(os.fspath(cwd))) if cwd else Path.cwd()
    return Path(os.path.abspath(base / path))


def _with_id(path: Path, pm_id: int, ext: str) -> Path:
    # PM2 only touches names ending in the extension: "out.txt" stays shared by every instance.
    if path.name.endswith(ext):
        return path.with_name(f"{path.name[: -len(ext)]}-{pm_id}{ext}")
    return path


def log_paths(
    home: Path, name: str, pm_id: int, options: Mapping[str, Any]
) -> dict[str, Path | None]:
    """The files an app's output goes to: ``{"out": ..., "err": ..., "combined": ...}``.

    ``None`` means no file: ``NULL`` or ``/dev/null`` given, no ``log_file``, or
    ``disable_logs``. Options use their canonical names (``out_file``,
    ``error_file``, ``log_file``, ``merge_logs``, ``disable_logs``, ``cwd``).
    """
    if options.get("disable_logs"):
        return {"out": None, "err": None, "combined": None}
    logs = Path(home) / "logs"
    base = safe_name(name)
    paths: dict[str, Path | None] = {}
    for stream, key, suffix in (("out", "out_file", "-out"), ("err", "error_file", "-error")):
        value = options.get(key)
        if is_null_path(value):
            paths[stream] = None
        elif value:
            paths[stream] = _user_path(value, options)
        else:
            paths[stream] = logs / f"{base}{suffix}.log"
    combined = options.get("log_file")
    if combined is True:
        paths["combined"] = logs / f"{base}.log"
    elif combined and not is_null_path(combined):
        paths["combined"] = _user_path(combined, options)
    else:
        paths["combined"] = None
    if not options.get("merge_logs"):
        paths = {k: p and _with_id(p, pm_id, ".log") for k, p in paths.items()}
    return paths


def own_log_paths(home: Path, name: str, pm_id: int, options: Mapping[str, Any]) -> set[Path]:
    """The paths :func:`log_paths` can give ``name`` in ``$CORRAL_HOME/logs``: corral's
    own choice, which the daemon opens in its own directory. Any other path came from
    the app's options and is opened with the app's rights."""
    given = ("out_file", "error_file", "log_file", "disable_logs")
    plain = {k: v for k, v in options.items() if k not in given}
    plain["log_file"] = True
    return {p for p in log_paths(home, name, pm_id, plain).values() if p is not None}


def pid_path(home: Path, name: str, pm_id: int, options: Mapping[str, Any]) -> Path:
    """Where the app's pid is written: ``pid_file`` or ``pids/<name>-<pm_id>.pid``.

    As in PM2 a given ``pid_file`` ending in ``.pid`` gets ``-<pm_id>`` too, so
    instances never share one; ``NULL`` means ``/dev/null``.
    """
    value = options.get("pid_file")
    if is_null_path(value):
        return Path(os.devnull)
    path = _user_path(value, options) if value else Path(home) / "pids" / f"{safe_name(name)}.pid"
    return _with_id(path, pm_id, ".pid")


# -- files -------------------------------------------------------------------


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
        mode: int = _FILE_MODE,
        opener: Callable[[], int] | None = None,
    ) -> None:
        """``opener`` returns a new descriptor of ``path`` (at first and on each reopen);
        by default ``path`` is opened for appending, never through a symbolic link."""
        self.path = Path(path)
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
        self._opener = opener or (lambda: os.open(self.path, _OPEN_FLAGS, mode))
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


class LogFiles:
    """The daemon's open log files, one :class:`LogFile` per path, reference-counted.

    ``on_error`` and ``on_resume`` (see :class:`LogFile`) may be set at any time;
    they apply to the files already open too.
    """

    on_error: Callable[[LogFile, OSError], None] | None
    on_resume: Callable[[LogFile, int, int, float], None] | None

    def __init__(
        self,
        *,
        on_error: Callable[[LogFile, OSError], None] | None = None,
        on_resume: Callable[[LogFile, int, int, float], None] | None = None,
    ) -> None:
        self._files: dict[Path, LogFile] = {}
        self.on_error = on_error
        self.on_resume = on_resume
        self.own_dir: tuple[Path, int] | None = None  # $CORRAL_HOME/logs and a descriptor of it

    def _failed(self, log: LogFile, exc: OSError) -> None:
        if self.on_error is not None:
            self.on_error(log, exc)

    def _resumed(self, log: LogFile, lines: int, nbytes: int, seconds: float) -> None:
        if self.on_resume is not None:
            self.on_resume(log, lines, nbytes, seconds)

    @staticmethod
    def _key(path: Path) -> Path:
        return Path(os.path.abspath(path))

    def acquire(
        self, path: Path, creds: Credentials | None = None, *, own: bool = False
    ) -> LogFile:
        """The open file for ``path``, opened (and its directory made) on first use.

        ``own``: a file corral named in :attr:`own_dir`, opened there by the daemon.
        Any other path is opened with the rights of ``creds`` (the app's account,
        :mod:`corral.asuser`), so an app gets no file its user could not open; one
        already open for another app is opened once more as ``creds`` to check it.
        Never through a symbolic link, never truncated. Raises OSError when the
        file cannot be opened.
        """
        key = self._key(path)
        log = self._files.get(key)
        if log is None:
            log = LogFile(
                key,
                on_error=self._failed,
                on_resume=self._resumed,
                opener=self._opener(key, creds, own),
            )
            self._files[key] = log
        elif not (own and self._in_own_dir(key)) and asuser.needed(creds):
            os.close(self._opener(key, creds, own)())  # may this account open it too?
        log.users += 1
        return log

    def _in_own_dir(self, path: Path) -> bool:
        return self.own_dir is not None and path.parent == self.own_dir[0]

    def _opener(self, path: Path, creds: Credentials | None, own: bool) -> Callable[[], int]:
        if own and self.own_dir is not None and self._in_own_dir(path):
            dir_fd = self.own_dir[1]
            return lambda: os.open(path.name, _OPEN_FLAGS, _FILE_MODE, dir_fd=dir_fd)
        opened: list[int] = []

        def as_app() -> int:  # its directory is made on the first open only, as acquire() did
            fd = asuser.open_as(creds, str(path), _OPEN_FLAGS, _FILE_MODE, parents=not opened)
            opened.append(fd)
            return fd

        return as_app

    def release(self, log: LogFile) -> None:
        """Drop one use of ``log``; the last one closes it."""
        log.users -= 1
        if log.users <= 0 and self._files.get(log.path) is log:
            del self._files[log.path]
            log.close()

    def get(self, path: Path) -> LogFile | None:
        return self._files.get(self._key(path))

    def reopen(self, path: Path) -> bool:
        """Reopen one file if it is open; False if not open or the reopen failed."""
        log = self.get(path)
        if log is None:
            return False
        try:
            log.reopen()
        except OSError:
            return False
        return True

    def reopen_all(self) -> list[Path]:
        """Reopen every file (``reload_logs``); returns the paths reopened.

        A file that cannot be reopened keeps its old fd and has ``error`` set.
        """
        return [path for path in list(self._files) if self.reopen(path)]

    def truncate(self, path: Path, creds: Credentials | None = None) -> bool:
        """Empty ``path``, open or not; False when it is neither open nor a regular file.

        A file not open is opened with the rights of ``creds`` (never through a
        symbolic link) to be truncated: ``flush`` empties only what the app could.
        """
        log = self.get(path)
        if log is not None:
            log.truncate()
            return True
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        try:
            fd = asuser.open_as(creds, str(self._key(path)), flags)
        except OSError:  # gone, a link, or not the app's to write
            return False
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
        return True

    def close_all(self) -> None:
        for log in self._files.values():
            log.close()
        self._files.clear()

    def __iter__(self) -> Iterator[LogFile]:
        return iter(list(self._files.values()))

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and self.get(Path(path)) is not None
