"""The message channel between the daemon and one child: JSON lines over a socket pair.

The child end is inherited (``CORRAL_CHANNEL_FD``, and ``NODE_CHANNEL_FD`` for
node, whose ``json`` IPC serialization is this same format), so
``process.send()`` and ``corral.child.send()`` both arrive here. Writes never
block the loop: what the socket does not take at once waits in a buffer.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable
from typing import Any

MAX_LINE = 16 * 1024 * 1024  # a child sending more without a newline is cut off
LOWEST_PASSED_FD = 10  # fds handed to children sit above 3..9, which activation may take


def high_fd(sock: socket.socket) -> socket.socket:
    """``sock`` moved to an fd >= 10, so the child's fd 3 (LISTEN_FDS) never clobbers it."""
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, LOWEST_PASSED_FD)
    moved = socket.socket(fileno=fd)
    sock.close()
    return moved


class Channel:
    """The daemon's end of one child's channel."""

    def __init__(self, on_message: Callable[[Any], None]) -> None:
        self.sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.child_sock = high_fd(child_sock)
        self.sock.setblocking(False)
        self.on_message = on_message
        self._inbox = bytearray()
        self._outbox = bytearray()
        # what waits behind a message with an fd: (line, fd or None), in order; a list,
        # as it holds a message or two at most (an empty deque is 600 bytes, per app)
        self._queue: list[tuple[bytes, int | None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    @property
    def child_fd(self) -> int:
        return self.child_sock.fileno()

    def start(self) -> None:
        """Listen on the loop; call once the child has been spawned with ``child_fd``."""
        self.child_sock.close()  # the child holds its own copy now
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def send(self, value: Any) -> None:
        """Queue one JSON value for the child."""
        if self.closed:
            return
        line = _line(value)
        if self._queue:  # after the fd message queued before it
            self._queue.append((line, None))
        else:
            self._outbox += line
        self._flush()

    def send_fd(self, value: Any, fd: int) -> None:
        """Queue one JSON value with a copy of ``fd`` (SCM_RIGHTS) on its first byte.

        Its line starts a ``sendmsg`` of its own once everything queued before it is
        written, as node's IPC expects: the receiver gives the fd to the one message
        whose line the read that carried the fd completes.
        """
        if self.closed:
            return
        self._queue.append((_line(value), fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 0)))
        self._flush()

    def _flush(self) -> None:
        while True:
            if self._outbox:
                try:
                    sent = self.sock.send(self._outbox)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self.close()
                    return
                del self._outbox[:sent]
                if self._outbox:
                    break
            if not self._queue:
                break
            line, fd = self._queue.pop(0)
            if fd is None:
                self._outbox += line
                continue
            try:
                sent = self.sock.sendmsg(
                    [line], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
                )
            except BlockingIOError:
                self._queue.insert(0, (line, fd))
                break
            except OSError:
                os.close(fd)
                self.close()
                return
            os.close(fd)
            self._outbox += line[sent:]  # the fd went with the first byte
        if self._loop is None or self.closed:
            return
        if self._outbox or self._queue:
            self._loop.add_writer(self.sock.fileno(), self._flush)
        else:
            self._loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()
            return
        self._inbox += data
        *lines, rest = self._inbox.split(b"\n")
        self._inbox = bytearray(rest) if len(rest) <= MAX_LINE else bytearray()
        for line in lines:
            if line.strip():
                self._deliver(bytes(line))

    def _deliver(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            message = line.decode("utf-8", "replace")  # a non-JSON line is passed on as text
        self.on_message(message)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self.sock.fileno())
                self._loop.remove_writer(self.sock.fileno())
        self.sock.close()
        self.child_sock.close()
        while self._queue:
            _, fd = self._queue.pop(0)
            if fd is not None:
                os.close(fd)


def _line(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"
