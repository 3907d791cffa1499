"""A child's stdin, held by the daemon: PM2's ``sendLineToStdin``.

Every child starts with a pipe as its stdin, as PM2's fork mode does
(``stdio: ['pipe', 'pipe', 'pipe', 'ipc']``). ``corral send ID LINE`` and ``corral
attach ID`` write lines to it through the ``send_line`` RPC command, by a
:class:`StdinPipe`.

The child's end is opened read-write (the pipe reopened through
``/proc/self/fd``), so the child itself keeps a writer and never reads an end of
file, and the daemon holds no descriptor of it: a line sent opens a write end
again through ``/proc/PID/fd/0``, once that is checked to be the same pipe (its
device and inode), and closes it once the pipe took everything. A child that
closed its stdin, or put another file there, is told so; nothing is written to a
file it opened. A pipe still held the old way (a write end handed over by an
older daemon) is kept open as it was.

Writing never blocks the daemon: what the pipe does not take at once waits in
a buffer of at most ``BUFFER_LIMIT`` bytes, flushed when the pipe has room; a
line that would overflow it is refused, naming the app, and nothing of it is
written. Reopening needs the right to read the child's ``/proc/PID/fd`` (the same
account, or root with CAP_SYS_PTRACE); without it a line is refused with that reason.

Unlike PM2, which refuses cluster mode, a node cluster instance is a child of
the daemon like any other here, so it has the same stdin.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from typing import TYPE_CHECKING, Any

from corral.errors import NotFoundError, OptionError, StateError, shorten
from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon

BUFFER_LIMIT = 1 << 20  # bytes waiting for a child that does not read (per instance)
MAX_LINE = 64 * 1024  # bytes of one line, its "\n" not counted


_WRITE_FLAGS = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_HOLD: set[tuple[int, int]] = set()  # pipes whose child end is read-only: write end kept
_REOPEN: list[bool | None] = [None]  # whether the child's end can be read-write (see below)


_CAP_SYS_PTRACE = 19


def _can_reopen_any() -> bool:
    """Whether this daemon may open /proc/PID/fd/0 of its apps, whatever their account:
    not root (its apps are its own account's), or root with CAP_SYS_PTRACE."""
    if os.geteuid() != 0:
        return True
    try:
        with open("/proc/self/status") as status:
            caps = next(int(x.split()[1], 16) for x in status if x.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return False
    return bool(caps >> _CAP_SYS_PTRACE & 1)


def reopens() -> bool:
    """Whether a child's stdin is reopened by its pid (the daemon holds no write end)."""
    if _REOPEN[0] is None:
        _REOPEN[0] = _can_reopen_any()  # once (a daemon's capabilities do not grow)
    return _REOPEN[0]


def open_pipe() -> tuple[int, int]:
    """A new stdin pipe: ``(read-write end for the child, non-blocking write end)``;
    the write end only names the pipe to :class:`StdinPipe`, which closes it. Without
    ``/proc``, or as root without CAP_SYS_PTRACE (it could not reopen a ``user=`` app's),
    the child's end is the read end and the write end is held as before."""
    read_end, write_end = os.pipe()  # all close-on-exec: only fd 0 of the child has it
    os.set_blocking(write_end, False)
    try:
        if not reopens():
            raise PermissionError(errno.EPERM, "no CAP_SYS_PTRACE")
        both = os.open(f"/proc/self/fd/{read_end}", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        _HOLD.add(_identity(os.fstat(write_end)))
        return read_end, write_end
    os.close(read_end)
    return both, write_end


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _child_holds_both_ends(pid: int, pipe: tuple[int, int]) -> bool:
    """Whether fd 0 of ``pid`` is ``pipe`` opened read-write (by :func:`open_pipe`)."""
    try:
        info = os.stat(f"/proc/{pid}/fd/0")
        with open(f"/proc/{pid}/fdinfo/0") as fdinfo:
            flags = next(int(x.split()[1], 8) for x in fdinfo if x.startswith("flags:"))
    except (OSError, StopIteration, ValueError):
        return False
    return (
        stat.S_ISFIFO(info.st_mode)
        and _identity(info) == pipe
        and flags & os.O_ACCMODE == os.O_RDWR
    )


class StdinPipe:
    """One child's stdin, for the daemon to write to; :meth:`write` never blocks.

    Made with the write end :func:`open_pipe` returned, which it closes (the child
    holds both ends); :meth:`adopt` takes a child another daemon started.
    """

    __slots__ = ("_loop", "broken", "exited", "fd", "held", "pending", "pipe")

    def __init__(
        self, fd: int | None, *, held: bool = False, pipe: tuple[int, int] | None = None
    ) -> None:
        """``held``: keep ``fd`` open for the child's life (a child whose end is read-only);
        ``pipe``: the (device, inode) of the child's pipe when no ``fd`` is given."""
        if pipe is None:
            assert fd is not None
            pipe = _identity(os.fstat(fd))
            if pipe in _HOLD:  # open_pipe() could not give the child both ends
                _HOLD.discard(pipe)
                held = True
        self.pipe = pipe  # what /proc/PID/fd/0 must be
        self.held = held and fd is not None
        self.fd: int | None = fd if self.held else None  # open while lines wait, or held
        if fd is not None and not self.held:
            os.close(fd)
        self.pending = bytearray()  # what the pipe did not take yet, in order
        self.broken = False  # the child closed its end (EPIPE, or fd 0 is no longer the pipe)
        self.exited = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop watching fd

    @classmethod
    def adopt(cls, fd: int | None, pid: int) -> StdinPipe | None:
        """The stdin of ``pid``, a child handed over with the write end ``fd`` (None:
        none was open): reopened by its pid when it holds both ends, else ``fd`` kept."""
        try:
            info = os.stat(f"/proc/{pid}/fd/0")
        except OSError:
            info = None
        if info is not None and _child_holds_both_ends(pid, _identity(info)):
            return cls(fd, pipe=_identity(info))  # fd (lines were waiting) is closed
        return cls(fd, held=True) if fd is not None else None

    def write(self, data: bytes, who: str, pid: int) -> None:
        """Queue ``data`` for the child ``pid`` (on the daemon's loop); StateError if
        the child closed its stdin, or if the buffer would pass ``BUFFER_LIMIT``."""
        if self.exited:
            raise StateError(f"{who} has exited: its stdin is closed")
        if self.broken:
            raise StateError(f"{who} has closed its stdin: it reads no more lines")
        if len(self.pending) + len(data) > BUFFER_LIMIT:
            raise StateError(
                f"the stdin of {who} is full: {len(self.pending)} bytes wait unread "
                f"(limit {BUFFER_LIMIT}); the app does not read its stdin"
            )
        if self.pending:
            self.pending += data  # behind what waits: lines stay in order
            return
        if self.fd is None:
            self._reopen(who, pid)
        done = self._write_now(data)
        if done is None:
            raise StateError(f"{who} has closed its stdin: it reads no more lines")
        if done < len(data):
            self.pending += data[done:]
            self._watch()
        else:
            self._release()

    def _reopen(self, who: str, pid: int) -> None:
        """A write end of the child's pipe, through ``/proc/PID/fd/0``, checked to be it."""
        where = f"/proc/{pid}/fd/0"
        try:
            if _identity(os.stat(where)) != self.pipe:  # checked before it is opened at all
                raise FileNotFoundError(errno.ENOENT, "not its stdin pipe")
            fd = os.open(where, _WRITE_FLAGS)
        except OSError as exc:
            if isinstance(exc, PermissionError):
                raise StateError(
                    f"cannot open the stdin of {who} ({where}: permission denied): the "
                    "daemon needs the app's account or CAP_SYS_PTRACE"
                ) from None
            self.broken = True  # closed, or another file in its place
            raise StateError(f"{who} has closed its stdin: it reads no more lines") from None
        if _identity(os.fstat(fd)) != self.pipe:  # swapped between the two looks
            os.close(fd)
            self.broken = True
            raise StateError(f"{who} has closed its stdin: it reads no more lines")
        self.fd = fd

    def _release(self) -> None:
        """Close the write end once nothing waits (the child holds the pipe open)."""
        if not self.held and not self.pending and self.fd is not None:
            self._unwatch()
            os.close(self.fd)
            self.fd = None

    def _write_now(self, data: bytes | bytearray) -> int | None:
        """Bytes the pipe took now (0 when full); None once the reader is gone."""
        assert self.fd is not None
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self.broken = True
            self.pending.clear()
            self._unwatch()
            if not self.held:
                self._release_broken()
            return None

    def _release_broken(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _watch(self) -> None:
        if self._loop is None and self.fd is not None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_writer(self.fd, self._flush)

    def _unwatch(self) -> None:
        if self._loop is not None and self.fd is not None and not self._loop.is_closed():
            self._loop.remove_writer(self.fd)
        self._loop = None

    def _flush(self) -> None:
        done = self._write_now(self.pending)
        if done:
            del self.pending[:done]
        if not self.pending:
            self._unwatch()
            self._release()

    def close(self) -> None:
        """The child exited: close the write end if open; what still waits is dropped."""
        self.exited = True
        self.pending.clear()
        if self.fd is None:
            return
        self._unwatch()
        os.close(self.fd)
        self.fd = None


def check_pm_id(pm_id: Any) -> int:
    """``pm_id`` as an int: a process number, never a name (PM2's ``attach`` says so)."""
    if isinstance(pm_id, str) and pm_id.isascii() and pm_id.strip().isdigit():
        return int(pm_id)
    if isinstance(pm_id, int) and not isinstance(pm_id, bool) and pm_id >= 0:
        return pm_id
    raise OptionError(
        f"pm_id must be a process number, not a name: got {shorten(pm_id)}; "
        "`corral ls` shows the ids",
        field="pm_id",
    )


def check_line(line: Any) -> bytes:
    """``line`` plus PM2's ``"\\n"``, as bytes; OptionError for a NUL or a line too long."""
    if not isinstance(line, str):
        raise OptionError(f"line must be a string, got {shorten(line)}", field="line")
    if "\0" in line:
        raise OptionError("line contains a NUL byte: send text without NUL", field="line")
    data = line.encode("utf-8", "surrogateescape")
    if len(data) > MAX_LINE:
        raise OptionError(
            f"line is {len(data)} bytes, more than {MAX_LINE}: send it in shorter lines",
            field="line",
        )
    return data + b"\n"


def send_line(daemon: Daemon, pm_id: Any, line: Any) -> dict[str, Any]:
    """The ``send_line`` RPC command: ``line`` and ``"\\n"`` to the stdin of ``pm_id``."""
    number = check_pm_id(pm_id)
    data = check_line(line)
    proc = daemon.procs.get(number)
    if proc is None:
        raise NotFoundError(f"no process has pm_id {number}; `corral ls` lists them")
    who = f"{proc.name} (pm_id {number})"
    child = proc.child
    if proc.state not in lifecycle.RUNNING_STATES or child is None:
        raise StateError(f"{who} is {proc.state.value}, not online: start it first")
    if child.stdin is None:
        raise StateError(f"{who} has no stdin pipe held by this daemon: restart it to get one")
    child.stdin.write(data, who, child.pid)
    return {"pm_id": number, "name": proc.name, "line": data.decode("utf-8", "surrogateescape")}
