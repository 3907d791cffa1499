"""The listening sockets the daemon binds once and shares with every instance of an app.

An address is ``host:port``, ``:port`` (every interface), a bare port, or
``unix:/path``. Each app name holds one socket while any of its instances
exists; instances get it as fd 3 (systemd socket activation).
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from corral.options.address import parse_address as parse_address  # public here too
from corral.supervisor import asuser
from corral.supervisor.channel import high_fd
from corral.supervisor.credentials import Credentials

BACKLOG = 1024


@dataclass
class Listener:
    """One bound socket and the pm_ids that use it."""

    address: str
    sock: socket.socket
    port: int | None
    users: set[int] = field(default_factory=set)
    ident: tuple[int, int] | None = None  # the socket file bound (unix:), removed at close
    creds: Credentials | None = None  # whose rights bound it

    @property
    def fd(self) -> int:
        return self.sock.fileno()


def bind(address: str, creds: Credentials | None = None) -> tuple[socket.socket, int | None]:
    """A listening socket for ``address``; OSError tells why it cannot be had.

    A ``unix:`` path is bound with the rights of ``creds`` (the app's account): its
    user gets no socket where it could not make one. A socket file there is replaced
    only when stale (nobody accepts on it): a live one is another service's.
    """
    kind, where = parse_address(address)
    if kind == "unix":
        path = str(where)

        def job() -> int:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode) and _stale(path):
                    os.unlink(path)  # a stale socket file from a previous run
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(path)
                sock.listen(BACKLOG)
            except BaseException:
                sock.close()
                raise
            return sock.detach()

        sock = socket.socket(fileno=asuser.fd_as(creds, job))
        return sock, None
    host, port = str(where).rsplit(":", 1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), int(port)))
    sock.listen(BACKLOG)
    return sock, sock.getsockname()[1]


def _stale(path: str) -> bool:
    """Whether nobody listens on the socket file ``path`` (connecting is refused)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def identity(address: str) -> tuple[int, int] | None:
    """(device, inode) of the socket file of a ``unix:`` address just bound, else None."""
    kind, where = parse_address(address)
    if kind != "unix":
        return None
    with contextlib.suppress(OSError):
        st = os.lstat(str(where))
        return (st.st_dev, st.st_ino)
    return None


def unlink_bound(address: str, ident: tuple[int, int] | None, creds: Credentials | None) -> None:
    """Remove the socket file of ``address`` if it still is the one bound (``ident``),
    with the rights of ``creds``: never another file put there since."""
    kind, where = parse_address(address)
    if kind != "unix" or ident is None:
        return

    def job() -> None:
        st = os.lstat(str(where))
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == ident:
            os.unlink(str(where))

    with contextlib.suppress(OSError):
        asuser.run_as(creds, job)


class Listeners:
    """One socket per app name, bound on first use and closed with the last instance.

    Besides, the sockets an app's instances ask for themselves (node cluster mode:
    ``core/supervisor/cluster_share.py``), one per (app name, address), kept and closed alike.
    """

    def __init__(self) -> None:
        self.by_name: dict[str, Listener] = {}
        self.shared: dict[tuple[str, str], Listener] = {}

    def share(
        self,
        name: str,
        address: str,
        pm_id: int,
        binder: Callable[[], tuple[socket.socket, int | None]],
    ) -> Listener:
        """The socket of ``name`` for ``address``, bound by ``binder`` on first use;
        OSError as ``binder`` raises it."""
        listener = self.shared.get((name, address))
        if listener is None:
            sock, port = binder()
            listener = Listener(address, high_fd(sock), port)
            self.shared[(name, address)] = listener
        listener.users.add(pm_id)
        return listener

    def acquire(
        self, name: str, address: str, pm_id: int, creds: Credentials | None = None
    ) -> Listener:
        listener = self.by_name.get(name)
        if listener is None or listener.address != address:
            if listener is not None and not listener.users:
                self._close(name)
            if listener is None or not listener.users:
                sock, port = bind(address, creds)
                ident = identity(address)
                sock = high_fd(sock)
                listener = Listener(address, sock, port, ident=ident, creds=creds)
                self.by_name[name] = listener
        listener.users.add(pm_id)
        return listener

    def release(self, name: str, pm_id: int) -> None:
        for key in [key for key in self.shared if key[0] == name]:
            self.shared[key].users.discard(pm_id)
            if not self.shared[key].users:
                self.shared.pop(key).sock.close()
        listener = self.by_name.get(name)
        if listener is None:
            return
        listener.users.discard(pm_id)
        if not listener.users:
            self._close(name)

    def _close(self, name: str) -> None:
        listener = self.by_name.pop(name)
        listener.sock.close()
        unlink_bound(listener.address, listener.ident, listener.creds)

    def close_all(self) -> None:
        for name in list(self.by_name):
            self._close(name)
        while self.shared:
            self.shared.popitem()[1].sock.close()
