"""The listening sockets the daemon binds once and shares with every instance of an app.

An address is ``host:port``, ``:port`` (every interface), a bare port, or
``unix:/path``. Each app name holds one socket while any of its instances
exists; instances get it as fd 3 (systemd socket activation).
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .channel import high_fd
from .errors import OptionError, shorten

BACKLOG = 1024


@dataclass
class Listener:
    """One bound socket and the pm_ids that use it."""

    address: str
    sock: socket.socket
    port: int | None
    users: set[int] = field(default_factory=set)

    @property
    def fd(self) -> int:
        return self.sock.fileno()


def parse_address(value: str | int) -> tuple[str, str | int]:
    """``("unix", path)`` or ``("tcp", (host, port))`` parts, or OptionError naming ``listen``."""
    text = str(value).strip()
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise OptionError(
                "listen 'unix:' needs a path, e.g. unix:/run/app.sock", field="listen"
            )
        return "unix", path
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise OptionError(
            f"listen {shorten(value)} is not an address: use host:port, :port or unix:/path",
            field="listen",
        )
    return "tcp", f"{host.strip('[]')}:{port}"


def bind(address: str) -> tuple[socket.socket, int | None]:
    """A listening socket for ``address``; OSError tells why it cannot be had."""
    kind, where = parse_address(address)
    if kind == "unix":
        path = Path(str(where))
        with contextlib.suppress(FileNotFoundError):
            if path.is_socket():
                path.unlink()  # a stale socket file from a previous run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.listen(BACKLOG)
        return sock, None
    host, port = str(where).rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), int(port)))
    sock.listen(BACKLOG)
    return sock, sock.getsockname()[1]


class Listeners:
    """One socket per app name, bound on first use and closed with the last instance."""

    def __init__(self) -> None:
        self.by_name: dict[str, Listener] = {}

    def acquire(self, name: str, address: str, pm_id: int) -> Listener:
        listener = self.by_name.get(name)
        if listener is None or listener.address != address:
            if listener is not None and not listener.users:
                self._close(name)
            if listener is None or not listener.users:
                sock, port = bind(address)
                sock = high_fd(sock)
                listener = self.by_name[name] = Listener(address, sock, port)
        listener.users.add(pm_id)
        return listener

    def release(self, name: str, pm_id: int) -> None:
        listener = self.by_name.get(name)
        if listener is None:
            return
        listener.users.discard(pm_id)
        if not listener.users:
            self._close(name)

    def _close(self, name: str) -> None:
        listener = self.by_name.pop(name)
        kind, where = parse_address(listener.address)
        listener.sock.close()
        if kind == "unix":
            with contextlib.suppress(OSError):
                os.unlink(str(where))

    def close_all(self) -> None:
        for name in list(self.by_name):
            self._close(name)
