"""The app log files: where they live, how lines reach them, and the open files.

The daemon reads each child's stdout/stderr pipes and hands every chunk to a
:class:`~corral.supervisor.lines.LineWriter`, one per (process, stream). The writer holds a partial
line until its newline arrives and writes whole lines only, so the out and
err streams of an app can share one file (and a combined ``log_file``)
without a line of one landing inside a line of the other. Bytes go through
untouched: invalid UTF-8 and NUL bytes reach the file as the app wrote them.

Every file is a :class:`~corral.supervisor.logfile.LogFile` kept in one
:class:`LogFiles` registry, one per resolved path however many writers use it,
so ``flush`` truncates it and ``reload_logs`` (after an external ``mv``)
reopens it in one place.

A log file holds a descriptor only while it is written: the registry makes it when
an app is added (refusing a path that cannot be opened; a start's own files are made
on a thread, :mod:`corral.supervisor.logmaker`) and closes it; its first write opens
it, and at most :attr:`LogFiles.max_open` files are open at once (:data:`MAX_OPEN_LOGS`,
or a 16th of ``RLIMIT_NOFILE`` if less): the least recently written is closed for a
new one, and one not written for :data:`IDLE_CLOSE` seconds (up to twice that) is
closed too. A closed file's next write opens its path again (O_APPEND, no symbolic
link followed, the app's account's rights): a file moved away while closed keeps what
it had, and the next lines start a new one at the path. All else here runs on the loop.

A file that cannot be written (a full disk) never stops the daemon reading
the pipes: its lines are dropped and counted (:mod:`corral.supervisor.logfile`).

Paths follow PM2 (``lib/Common.js`` ``prepareAppConf`` and ``God.executeApp``):
``$CORRAL_HOME/logs/<name>-out.log`` and ``<name>-error.log``, with
``-<pm_id>`` before ``.log`` unless ``merge_logs``. Where corral differs:

- PM2 writes each pipe read as it comes, so an out line can land inside an
  err line and its date prefix mid-line; corral writes whole lines, up to
  1 MiB (:data:`~corral.supervisor.lines.MAX_LINE`); a longer one is cut in pieces of
  1 MiB. A partial line is written after 0.1 s without its newline and
  continued by the next write (:meth:`~corral.supervisor.logfile.LogFile.write`'s ``owner``).
- A user-given ``app-2024.log`` becomes ``app-2024-<pm_id>.log``; PM2 replaces
  a trailing ``-<digits>`` with the id (``app-<pm_id>.log``).
- ``log_type: json`` writes one record per line, its ``message`` without the
  newline, invalid UTF-8 replaced by U+FFFD; PM2 writes one per pipe read.
"""

from __future__ import annotations

import os
import resource
import stat
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.paths import safe_name
from corral.supervisor import asuser
from corral.supervisor.credentials import Credentials
from corral.supervisor.lines import MAX_LINE, LineWriter
from corral.supervisor.logfile import FILE_MODE, OPEN_FLAGS, LogFile
from corral.supervisor.logmaker import LogMaker

if TYPE_CHECKING:
    import asyncio

__all__ = ["MAX_LINE", "MAX_OPEN_LOGS", "LineWriter", "LogFiles", "log_paths", "pid_path"]

_NULL_PATHS = frozenset(("NULL", os.devnull))
MAX_OPEN_LOGS = 256  # log files open at once, at most (fewer under a small RLIMIT_NOFILE)
IDLE_CLOSE = 60.0  # seconds: a log file not written for this long (to twice it) is closed


# -- paths -------------------------------------------------------------------


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


class _OpenInDir:
    """Opens one file of corral's own log directory by name (what a lambda did, smaller:
    one of these per log file)."""

    __slots__ = ("dir_fd", "name")

    def __init__(self, name: str, dir_fd: int) -> None:
        self.name, self.dir_fd = name, dir_fd

    def __call__(self) -> int:
        return os.open(self.name, OPEN_FLAGS, FILE_MODE, dir_fd=self.dir_fd)


class _OpenAsApp:
    """Opens one file with the rights of an app's account; its directory is made on
    the first open only (a later one finds it, or fails as it should: moved away)."""

    __slots__ = ("creds", "made", "path")

    def __init__(self, path: Path, creds: Credentials | None) -> None:
        self.path, self.creds, self.made = path, creds, False

    def __call__(self) -> int:
        parents, self.made = not self.made, True
        return asuser.open_as(self.creds, str(self.path), OPEN_FLAGS, FILE_MODE, parents=parents)


def open_log_limit() -> int:
    """How many log files may be open at once: :data:`MAX_OPEN_LOGS`, or a 16th of
    the soft ``RLIMIT_NOFILE`` when that is less (at least 8)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN_LOGS
    return max(8, min(MAX_OPEN_LOGS, soft // 16))


class LogFiles:
    """The daemon's log files, one :class:`LogFile` per path, reference-counted, and the
    bounded set of those open now (least recently written first).

    ``on_error`` and ``on_resume`` (see :class:`LogFile`) may be set at any time;
    they apply to the files already made too. ``max_open``: the bound on open files,
    :func:`open_log_limit` when the first one opens unless set.
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
        self.max_open: int | None = None
        self._open: OrderedDict[LogFile, int] = OrderedDict()  # open now -> idle sweep written in
        self._sweeps = 0
        self._sweep: asyncio.TimerHandle | None = None
        self.maker = LogMaker()  # the own files a start makes on a thread

    def _failed(self, log: LogFile, exc: OSError) -> None:
        if self.on_error is not None:
            self.on_error(log, exc)

    def _resumed(self, log: LogFile, lines: int, nbytes: int, seconds: float) -> None:
        if self.on_resume is not None:
            self.on_resume(log, lines, nbytes, seconds)

    # -- the open files: what LogFile tells its pool --------------------------

    def touch(self, log: LogFile) -> None:
        """``log`` is written: the most recently used."""
        self._open[log] = self._sweeps
        self._open.move_to_end(log)

    def opened(self, log: LogFile) -> None:
        """``log`` took a descriptor: close the least recently written past the bound."""
        self.touch(log)
        if self.max_open is None:
            self.max_open = open_log_limit()
        while len(self._open) > self.max_open:
            oldest, _ = self._open.popitem(last=False)
            oldest.evict()
        if self._sweep is None:
            self._schedule()

    def forget(self, log: LogFile) -> None:
        """``log`` is closed for good."""
        self._open.pop(log, None)

    def shed(self) -> bool:
        """Close the older half of the open files (the daemon is out of descriptors);
        whether any was closed."""
        count = (len(self._open) + 1) // 2
        for _ in range(count):
            oldest, _ = self._open.popitem(last=False)
            oldest.evict()
        return count > 0

    def open_count(self) -> int:
        """How many log files hold a descriptor now."""
        return len(self._open)

    def _schedule(self) -> None:
        import asyncio  # deferred: the loop is the daemon's; a tool without one never sweeps

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._sweep = loop.call_later(IDLE_CLOSE, self.close_idle)

    def close_idle(self) -> int:
        """Close the files not written since the last call (the timer's, every
        :data:`IDLE_CLOSE` seconds while any is open); how many were closed."""
        self._sweep = None
        last, self._sweeps = self._sweeps, self._sweeps + 1
        closed = 0
        while self._open:
            oldest, sweep = next(iter(self._open.items()))
            if sweep >= last:
                break
            del self._open[oldest]
            oldest.evict()
            closed += 1
        if self._open:
            self._schedule()
        return closed

    @staticmethod
    def _key(path: Path) -> Path:
        text = os.path.abspath(path)
        # the same object when it is absolute already: one Path per file, not one per use
        return path if isinstance(path, Path) and text == str(path) else Path(text)

    def acquire(
        self, path: Path, creds: Credentials | None = None, *, own: bool = False, soon: bool = False
    ) -> LogFile:
        """The file for ``path``, opened (and its directory made) on first use, and closed
        at once: the first write opens it again. ``own``: a file corral named in
        :attr:`own_dir`, opened there by the daemon (``soon``: made on a thread,
        :mod:`corral.supervisor.logmaker`). Any other path is opened with the rights of
        ``creds`` (the app's account, :mod:`corral.supervisor.asuser`): an app gets no file
        its user could not open; one known for another app is opened again as ``creds``.
        Never through a symbolic link, never truncated. OSError if it cannot be opened."""
        key = self._key(path)
        log = self._files.get(key)
        if log is None:
            opener = self._opener(key, creds, own)
            if soon and isinstance(opener, _OpenInDir):
                self.maker.submit(key, opener)
            else:
                os.close(opener())  # made now, and a path that cannot be opened is refused now
            log = LogFile(
                key, on_error=self._failed, on_resume=self._resumed, opener=opener, pool=self
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
            return _OpenInDir(path.name, self.own_dir[1])
        return _OpenAsApp(path, creds)

    def release(self, log: LogFile) -> None:
        """Drop one use of ``log``; the last one closes it."""
        log.users -= 1
        if log.users <= 0 and self._files.get(log.path) is log:
            del self._files[log.path]
            self.maker.forget(log.path)
            log.close()

    def get(self, path: Path) -> LogFile | None:
        return self._files.get(self._key(path))

    def reopen(self, path: Path) -> bool:
        """Reopen one file if it is known; False if not known or the reopen failed (a
        file holding no descriptor now is only marked: its next write opens the path)."""
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
            try:
                log.truncate()  # opened first if it holds no descriptor now
            except (OSError, ValueError):
                return False
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
        for log in list(self._files.values()):
            log.close()
        self._files.clear()
        self._open.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def __iter__(self) -> Iterator[LogFile]:
        return iter(list(self._files.values()))

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, (str, os.PathLike)) and self.get(Path(path)) is not None
