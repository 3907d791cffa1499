"""A few RPC calls without pyzmq: the hot path of ``corral jlist``, ``ls`` and ``ping``.

Importing pyzmq costs a CLI call ~12 ms, a quarter of a whole ``corral
jlist`` with 100 apps. The daemon's unix socket speaks ZMTP 3 (RFC 23), whose
NULL handshake fits in a few lines: a 64-byte greeting each way, a READY
command each way, then length-prefixed frames. This module speaks it as a
DEALER for one request and its reply (or a few, one after the other), and imports nothing but the
standard library's socket (its C half) and struct.

Anything unexpected (no daemon, a home that is not private, a peer that says
something else) returns None, and the caller takes the full path through
:func:`corral.connect`, which starts a daemon or says what is wrong.
"""

from __future__ import annotations

import os
import stat
import struct

try:  # the C module: `socket` itself imports enum and selectors, ~3.5 ms
    import _socket as socket
except ImportError:  # pragma: no cover - other Pythons
    import socket  # type: ignore[no-redef]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# signature (its padding ends in 1, as libzmq's: a ZMTP 1.0 peer reads it as a length),
# version 3.1, mechanism NULL, as-server 0, filler
GREETING = (
    b"\xff" + b"\x00" * 7 + b"\x01\x7f" + b"\x03\x01" + b"NULL".ljust(20, b"\x00") + b"\x00" * 32
)
MORE, LONG, COMMAND = 0x01, 0x02, 0x04
# libzmq's I/O thread greets at once even while the daemon's loop is busy: no greeting
# soon means a stopped (SIGSTOP) daemon, which the full path then names
GREETING_TIMEOUT = 3.0


def call(cmd: bytes, timeout: float = 60.0, args: bytes = b"{}") -> bytes | None:
    """The daemon's reply to ``{"id":1,"cmd":cmd,"args":args}`` (``args`` a JSON
    object, encoded), or None (take the full path)."""
    replies = exchange([(cmd, args)], timeout)
    return None if replies is None else replies[0]


def exchange(requests: list[tuple[bytes, bytes]], timeout: float = 60.0) -> list[bytes] | None:
    """The replies to ``requests`` (each ``(cmd, args)``, the ``n``-th sent with id ``n``),
    in that order, on one connection; None if anything went wrong."""
    pending = send(requests, timeout)
    return None if pending is None else pending.replies()


def send(requests: list[tuple[bytes, bytes]], timeout: float = 60.0) -> Pending | None:
    """Send ``requests`` (see :func:`exchange`) and return at once: the daemon answers
    while the caller does something else, then reads them with ``replies()``; None if
    no daemon took them."""
    path = _socket_path()
    if path is None or "CORRAL_ADDRESS" in os.environ:
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.settimeout(min(timeout, GREETING_TIMEOUT))
        sock.connect(path)
        sock.sendall(GREETING)  # libzmq hangs up on a READY sent before its own
        reader = _Reader(sock)
        if reader.exact(64)[:1] != b"\xff":
            raise ValueError("not a ZMTP peer")
        flags, body = reader.frame()
        if not flags & COMMAND or not body.startswith(b"\x05READY"):
            raise ValueError("no READY")
        sock.settimeout(timeout)
        frames = [_frame(_ready(), COMMAND)]
        for number, (cmd, args) in enumerate(requests, 1):
            frames.append(_frame(b'{"id":%d,"cmd":"%s","args":%s}' % (number, cmd, args), 0))
        sock.sendall(b"".join(frames))
    except (OSError, ValueError):
        sock.close()
        return None
    return Pending(sock, reader, len(requests))


class Pending:
    """Requests sent on an open connection, their replies not read yet."""

    def __init__(self, sock: Any, reader: _Reader, count: int) -> None:
        self.sock, self.reader, self.count = sock, reader, count

    def replies(self) -> list[bytes] | None:
        """Each request's reply, in the order sent (the daemon may answer in another);
        None if anything went wrong. Closes the connection."""
        found: dict[int, bytes] = {}
        try:
            while len(found) < self.count:
                flags, reply = self.reader.frame()
                number = _id_of(reply)
                if flags & (COMMAND | MORE) or number is None:
                    return None
                found[number] = reply
        except (OSError, ValueError):
            return None
        finally:
            self.close()
        if sorted(found) != list(range(1, self.count + 1)):
            return None
        return [found[n] for n in range(1, self.count + 1)]

    def close(self) -> None:
        self.sock.close()


def _id_of(reply: bytes) -> int | None:
    """The id of a reply ``{"id":N,...``, or None."""
    if not reply.startswith(b'{"id":'):
        return None
    digits = reply[6 : reply.find(b",", 6)]
    return int(digits) if digits.isdigit() else None


def result(reply: bytes | None, number: int = 1) -> bytes | None:
    """The ``result`` of a successful reply (to the request of id ``number``), as the
    daemon encoded it; None otherwise."""
    prefix = b'{"id":%d,"ok":true,"result":' % number
    if reply is None or not reply.startswith(prefix) or not reply.endswith(b"}"):
        return None
    return reply[len(prefix) : -1]


def _socket_path() -> str | None:
    """``$CORRAL_HOME/rpc.sock`` if the home is ours and no one else can write it."""
    value = os.environ.get("CORRAL_HOME")
    root = os.path.abspath(os.path.expanduser(value)) if value else None
    if root is None:
        root = os.path.join(os.path.expanduser("~"), ".corral")
    try:
        info = os.stat(root)
    except OSError:
        return None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None  # the full path refuses it, with the fix in its message
    return os.path.join(root, "rpc.sock")


def _ready() -> bytes:
    """READY with the properties libzmq's own DEALER sends (it refuses a READY without
    an Identity)."""
    body = b"\x05READY"
    for name, value in ((b"Socket-Type", b"DEALER"), (b"Identity", b"")):
        body += bytes([len(name)]) + name + struct.pack(">I", len(value)) + value
    return body


def _frame(body: bytes, flags: int) -> bytes:
    if len(body) < 256:
        return bytes([flags, len(body)]) + body
    return bytes([flags | LONG]) + struct.pack(">Q", len(body)) + body


class _Reader:
    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self.buffer)))
            if not chunk:
                raise ValueError("the daemon closed the connection")
            self.buffer += chunk
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def frame(self) -> tuple[int, bytes]:
        flags = self.exact(1)[0]
        if flags & LONG:
            size = struct.unpack(">Q", self.exact(8))[0]
        else:
            size = self.exact(1)[0]
        return flags, self.exact(size)
