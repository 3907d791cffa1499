"""A child's stdin, held by the daemon: PM2's ``sendLineToStdin``.

Every child starts with a pipe as its stdin, as PM2's fork mode does
(``stdio: ['pipe', 'pipe', 'pipe', 'ipc']``); the daemon keeps the write end,
non-blocking, in a :class:`StdinPipe`. ``corral send ID LINE`` and ``corral
attach ID`` write lines to it through the ``send_line`` RPC command.

Writing never blocks the daemon: what the pipe does not take at once waits in
a buffer of at most ``BUFFER_LIMIT`` bytes, flushed when the pipe has room; a
line that would overflow it is refused, naming the app, and nothing of it is
written. The write end is closed when the child exits (the pipe dies with it),
so a daemon holds one such fd per running child and none afterwards.

Unlike PM2, which refuses cluster mode, a node cluster instance is a child of
the daemon like any other here, so it has the same stdin.
"""

from __future__ import annotations

import asyncio
import errno
import os
from typing import TYPE_CHECKING, Any

from corral.errors import NotFoundError, OptionError, StateError, shorten
from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon

BUFFER_LIMIT = 1 << 20  # bytes waiting for a child that does not read (per instance)
MAX_LINE = 64 * 1024  # bytes of one line, its "\n" not counted


def open_pipe() -> tuple[int, int]:
    """A new stdin pipe: ``(read end for the child, non-blocking write end)``."""
    read_end, write_end = os.pipe()  # both close-on-exec: only fd 0 of the child has it
    os.set_blocking(write_end, False)
    return read_end, write_end


class StdinPipe:
    """The daemon's write end of one child's stdin; :meth:`write` never blocks."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        self.pending = bytearray()  # what the pipe did not take yet, in order
        self.broken = False  # the child closed its end (EPIPE)
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop watching fd

    def write(self, data: bytes, who: str) -> None:
        """Queue ``data`` for the child (on the daemon's loop); StateError if the
        child closed its stdin, or if the buffer would pass ``BUFFER_LIMIT``."""
        if self.fd is None:
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
        done = self._write_now(data)
        if done is None:
            raise StateError(f"{who} has closed its stdin: it reads no more lines")
        if done < len(data):
            self.pending += data[done:]
            self._watch()

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
            return None

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

    def close(self) -> None:
        """Close the write end (the child exited); what still waits is dropped."""
        if self.fd is None:
            return
        self._unwatch()
        os.close(self.fd)
        self.fd = None
        self.pending.clear()


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
    child.stdin.write(data, who)
    return {"pm_id": number, "name": proc.name, "line": data.decode("utf-8", "surrogateescape")}
