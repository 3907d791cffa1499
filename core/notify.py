"""``NOTIFY_SOCKET``: systemd's readiness protocol, for programs in any language.

One datagram socket per daemon; a child (or a process it started) sends
``READY=1`` and the daemon learns who sent it from the kernel-checked
credentials (``SO_PASSCRED``), never from the datagram's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path

_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class NotifySocket:
    """Receives sd_notify datagrams and reports ``READY=1`` with the sender's pid."""

    def __init__(self, path: Path, on_ready: Callable[[int], None]) -> None:
        self.path = path
        self.on_ready = on_ready
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o600)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setblocking(False)
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(64):
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            pid = _sender(ancillary)
            if pid and b"READY=1" in data.split(b"\n"):
                self.on_ready(pid)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            return _CREDS.unpack(data[: _CREDS.size])[0]
    return None
