"""The daemon's TCP acceptor: it takes connections for the CURVE socket and counts them.

libzmq has no cap per peer, and a peer that connects and stays silent never
reaches its authentication hook: 1,100 idle connections took every file
descriptor of a daemon. So the daemon accepts TCP itself, in front of zmq:
at most ``tcp_max_per_source`` connections from one IP address and
``tcp_max_connections`` in all (fewer when the fd limit is low: each costs
three descriptors), a connection silent for ``tcp_handshake_timeout``
seconds is closed, and each accepted one is spliced, byte for byte, to the
CURVE socket on a private unix socket (``$CORRAL_HOME/tcp.sock``, 0600). CURVE
stays end to end: the acceptor sees only ciphertext. Refusals go to
``corral.log`` at most once a minute per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any

from corral.api import FD_RESERVE as RESERVE
from corral.api import fd_limit

CHUNK = 64 * 1024
FD_HEADROOM = 128 + RESERVE  # descriptors kept for the daemon itself and its apps
FDS_PER_CONNECTION = 3  # the TCP socket, the splice's unix socket, zmq's end of it


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    max_per_source: int = 16
    handshake_timeout: float = 10.0  # seconds a new connection may stay silent

    def total(self) -> int:
        """The cap in all: the setting, or what the fd limit leaves room for."""
        room = (fd_limit() - FD_HEADROOM) // FDS_PER_CONNECTION
        return max(1, min(self.max_connections, room))


def listen_socket(address: str) -> socket.socket:
    """A listening TCP socket for ``tcp://HOST:PORT`` (``*``: every IPv4 address)."""
    host, _, port = address[len("tcp://") :].rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        return socket.create_server((host[1:-1], int(port)), family=socket.AF_INET6, backlog=128)
    if host == "*":
        host = "0.0.0.0"
    else:
        host = _interface_address(host) or host
    return socket.create_server((host, int(port)), backlog=128)


def _interface_address(name: str) -> str | None:
    """The IPv4 address of the network interface ``name`` (zmq accepts ``tcp://eth0:N``)."""
    import psutil  # deferred: psutil (~10 ms), only for an interface name

    for addr in psutil.net_if_addrs().get(name, []):
        if addr.family == socket.AF_INET:
            return addr.address
    return None


class Acceptor:
    """Accepts on ``sock``, counts, and splices each connection to ``upstream`` (a path)."""

    def __init__(self, sock: socket.socket, upstream: str, limits: Limits, refusals: Any) -> None:
        self.sock = sock
        self.upstream = upstream
        self.limits = limits
        self.refusals = refusals
        self.by_source: Counter[str] = Counter()
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_client, sock=self.sock, limit=CHUNK)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?",)
        source = str(peer[0])
        if self.by_source[source] >= self.limits.max_per_source:
            self.refusals.refused(
                "too-many-from-source",
                f"{source} has {self.by_source[source]} connections open already "
                f"(tcp_max_per_source: {self.limits.max_per_source})",
                source=source,
            )
            writer.transport.abort()
            return
        total = self.limits.total()
        if self.connections >= total:
            self.refusals.refused(
                "too-many-connections",
                f"{self.connections} connections are open already (the cap is {total}: "
                f"tcp_max_connections, and the fd limit {fd_limit()})",
                source=source,
            )
            writer.transport.abort()
            return
        self.connections += 1
        self.by_source[source] += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(source, reader, writer)
        finally:
            self.connections -= 1
            self.by_source[source] -= 1
            if not self.by_source[source]:
                del self.by_source[source]
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _serve(
        self, source: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            first = await asyncio.wait_for(reader.read(CHUNK), self.limits.handshake_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            self.refusals.refused(
                "silent",
                f"it sent nothing within {self.limits.handshake_timeout:g} s "
                "(tcp_handshake_timeout)",
                source=source,
            )
            return
        except OSError:
            return
        if not first:
            return
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream, limit=CHUNK)
        except OSError as exc:
            self.refusals.refused("upstream", f"the CURVE socket cannot be reached: {exc}")
            return
        try:
            up_writer.write(first)
            pumps = [
                asyncio.ensure_future(_pump(reader, up_writer)),
                asyncio.ensure_future(_pump(up_reader, writer)),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
        finally:
            up_writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            if self._server is not None:
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file or an error; the writer's buffer bounds what waits."""
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
