"""``NOTIFY_SOCKET``: systemd's readiness protocol, for programs in any language.

A child (or a process it started) sends ``READY=1`` (or ``WATCHDOG=1``, any
assignment) and the daemon learns who sent it from the kernel-checked credentials
(``SO_PASSCRED``), never from the datagram's text: only the app's own process tree
can make it ready, whoever can reach the socket (as with systemd's world-writable
``/run/systemd/notify``).

Apps run as the daemon's user get ``notify.sock`` in the private home (0600).
Apps run as another user cannot reach into that 0700 home, so they get an
abstract socket (``@corral/<pid>/<random>``), bound on the first such spawn: it
has no file to leave behind or to give wrong permissions, and the daemon holds
its random name before any app learns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import struct
from collections.abc import Callable
from pathlib import Path

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid
OnMessage = Callable[[int, dict[str, str]], None]  # (the sender's pid, the datagram's fields)


class NotifySocket:
    """Receives sd_notify datagrams and hands each one's fields over with the sender's pid.

    ``path`` None binds an abstract socket of a random name instead of a file.
    """

    def __init__(self, path: Path | None, on_message: OnMessage) -> None:
        self.path = path
        self.on_message = on_message
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if path is None:
                self.name = f"corral/{os.getpid()}/{secrets.token_hex(8)}"
                self.sock.bind("\0" + self.name)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                self.sock.bind(str(path))
                os.chmod(path, 0o600)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.sock.setblocking(False)
            asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)
        except BaseException:
            self.sock.close()
            raise

    @property
    def address(self) -> str:
        """The value of ``NOTIFY_SOCKET``: a path, or ``@name`` for an abstract socket."""
        return str(self.path) if self.path is not None else "@" + self.name

    def _readable(self) -> None:
        for _ in range(64):
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pid = _sender(ancillary)
            fields = parse(data)
            if pid and fields:
                self.on_message(pid, fields)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


class Notifier:
    """The daemon's sd_notify sockets: the private file, and the abstract one once needed."""

    def __init__(self, path: Path, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.private = NotifySocket(path, on_message)
        self.shared: NotifySocket | None = None

    @property
    def path(self) -> Path:
        assert self.private.path is not None
        return self.private.path

    def address_for(self, uid: int | None) -> str:
        """``NOTIFY_SOCKET`` for a child run as ``uid`` (None: as the daemon)."""
        if uid is None or uid == os.getuid():
            return self.private.address
        if self.shared is None:
            self.shared = NotifySocket(None, self.on_message)
        return self.shared.address

    def close(self) -> None:
        self.private.close()
        if self.shared is not None:
            self.shared.close()


MAX_FIELDS = 32  # per datagram: sd_notify sends a handful


def parse(data: bytes) -> dict[str, str]:
    """``b"READY=1\nSTATUS=up"`` -> ``{"READY": "1", "STATUS": "up"}``: sd_notify's
    newline-separated assignments; a line without ``=`` or not UTF-8 is skipped."""
    fields: dict[str, str] = {}
    for line in data.split(b"\n")[:MAX_FIELDS]:
        key, sep, value = line.partition(b"=")
        if not sep or not key:
            continue
        try:
            fields[key.decode("ascii")] = value.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return fields


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return _CREDS.unpack(data[: _CREDS.size])[0]
    return None
