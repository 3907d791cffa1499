"""The daemon's TCP endpoint: the RPC wire behind CURVE, behind the acceptor's caps.

A client that speaks plain text, that does not know the server's public key,
or whose public key is not in ``keys/clients/`` is refused during the
handshake: its requests never reach the daemon. Each kind of refusal is
logged to ``corral.log`` at most once a minute, with the number of similar
ones since. ``keys/clients/`` is read again when it changes, so adding or
deleting a key file takes effect on the next connection without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator
from zmq.utils.monitor import recv_monitor_message

from corral import DaemonError
from corral.api import DaemonAPI

from .acceptor import Acceptor, Limits, listen_socket
from .keys import Keys, allowed_keys, ensure_keys
from .settings import load_settings

REFUSAL_LOG_INTERVAL = 60.0  # seconds between two log lines about the same kind of refusal


class RefusalLog:
    """Logs refused TCP clients: each kind at most once per ``interval``, with a count.

    A refused client reconnects every 100 ms or so; one line a minute says
    as much as six hundred.
    """

    def __init__(
        self,
        log: Any,
        interval: float = REFUSAL_LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._since = Counter[str]()

    def refused(self, kind: str, why: str, **fields: Any) -> None:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._since[kind] += 1
            return
        self._last[kind] = now
        similar = self._since.pop(kind, 0)
        if similar:
            fields["similar_since_last"] = similar
        self.log.warning(f"refused a TCP client: {why}", refusal=kind, **fields)


# handshake failures the socket monitor reports, by zmq's protocol error code
_PROTOCOL_REFUSALS = {
    zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: (
        "plain-text",
        "it does not use CURVE (a plain-text client)",
    ),
    zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: (
        "server-key",
        "its server key is not this daemon's (keys/server.key)",
    ),
}


def _refusal(event: dict[str, Any]) -> tuple[str, str]:
    """``(kind, why)`` of a failed handshake the socket monitor reported."""
    value = int(event["value"])
    if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return _PROTOCOL_REFUSALS.get(value, ("handshake", f"zmq protocol error {value:#x}"))
    # a plain-text client often hangs up on CURVE's greeting before the daemon reads its own
    why = f"it hung up during the handshake ({os.strerror(value)}; often a plain-text client)"
    return "handshake", why


class AllowedKeys:
    """zmq's CURVE credentials provider: the keys in ``keys/clients/``, read again on change."""

    def __init__(self, directory: Path, refusals: RefusalLog) -> None:
        self.directory = directory
        self.refusals = refusals
        self._stamp: tuple | None = None
        self._keys: dict[bytes, Path] = {}

    def callback(self, domain: str, key: bytes) -> bool:
        self._refresh()
        if key in self._keys:
            return True
        self.refusals.refused(
            "client-key",
            "its public key is not in keys/clients/",
            client_public_key=key.decode(),
            fix=f"to allow it: corral keys add {shlex.quote(key.decode())}",
        )
        return False

    def _refresh(self) -> None:
        try:
            stamp = tuple(
                (entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                for entry in os.scandir(self.directory)
            )
        except OSError:
            stamp = ()
        if stamp != self._stamp:
            self._stamp = stamp
            self._keys = allowed_keys(self.directory)


class TCPServer:
    """The daemon's TCP endpoint: the RPC wire behind CURVE, on a zmq context of its own.

    Its own context keeps zmq's authenticator (which serves a whole context)
    away from the unix socket, which stays as it was.
    """

    def __init__(
        self, address: str, keys: Keys, daemon: DaemonAPI, limits: Limits | None = None
    ) -> None:
        log = daemon.log
        self.address = address
        self.refusals = RefusalLog(log)
        public, secret = zmq.auth.load_certificate(keys.server_secret)
        self.ctx = zmq.asyncio.Context()
        # pyzmq logs every ZAP decision at debug level; corral.log gets the rate-limited lines
        self.auth = AsyncioAuthenticator(
            self.ctx, log=logging.getLogger("corral.plugins.remote.zap")
        )
        self.auth.start()
        self.auth.configure_curve_callback("*", AllowedKeys(keys.clients, self.refusals))
        options: dict[int, Any] = {
            zmq.CURVE_SERVER: 1,
            zmq.CURVE_PUBLICKEY: public,
            zmq.CURVE_SECRETKEY: secret,
        }
        limits = limits or Limits()
        # a peer that stalls in the handshake is dropped (the acceptor then closes its TCP)
        options[zmq.HANDSHAKE_IVL] = int(limits.handshake_timeout * 1000)
        # zmq serves CURVE on a private unix socket; the acceptor splices TCP to it
        self.endpoint = keys.root.parent / "tcp.sock"
        with contextlib.suppress(FileNotFoundError):
            self.endpoint.unlink()  # a dead daemon's
        try:
            listener = listen_socket(address)
        except OSError as exc:
            self.auth.stop()
            self.ctx.destroy(linger=0)
            raise DaemonError(
                f"rpc_address {address}: cannot listen there: {exc.strerror or exc}: use an "
                "address of this machine (an IP, an interface name or *) and a free port"
            ) from None
        try:
            self.server = daemon.serve_rpc(self.ctx, f"ipc://{self.endpoint}", options)
        except zmq.ZMQError as exc:
            listener.close()
            self.auth.stop()
            self.ctx.destroy(linger=0)
            raise DaemonError(f"cannot serve CURVE on {self.endpoint}: {exc.strerror}") from None
        os.chmod(self.endpoint, 0o600)
        self.acceptor = Acceptor(listener, str(self.endpoint), limits, self.refusals)
        self.monitor = self.server.socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        self._tasks = [
            asyncio.ensure_future(self.server.serve()),
            asyncio.ensure_future(self._watch_handshakes()),
            asyncio.ensure_future(self.acceptor.start()),
        ]

    async def _watch_handshakes(self) -> None:
        while True:
            try:
                event = await recv_monitor_message(self.monitor)
            except zmq.ZMQError:
                return
            self.refusals.refused(*_refusal(event))

    async def close(self) -> None:
        """Let in-flight replies go out, then close the endpoint."""
        await self.server.drain()
        await self.acceptor.close()
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(zmq.ZMQError):
            self.server.socket.disable_monitor()
        self.monitor.close(linger=0)
        self.server.close()
        self.auth.stop()
        self.ctx.destroy(linger=200)
        with contextlib.suppress(FileNotFoundError):
            self.endpoint.unlink()


def open_server(daemon: DaemonAPI) -> TCPServer | None:
    """The TCP endpoint the settings of the daemon's home ask for (keys made on first use),
    or None.

    Call it on the daemon's running loop before anything else is bound: a bad
    ``rpc_address`` raises ConfigError (DaemonError when the address cannot
    be bound), and the daemon has started nothing.
    """
    log = daemon.log
    settings = load_settings(daemon.home)
    if settings.rpc_address is None:
        return None
    keys = ensure_keys(daemon.home)
    try:
        server = TCPServer(settings.rpc_address, keys, daemon, settings.limits)
    except DaemonError as exc:
        log.error("daemon failed to start", error=str(exc))
        raise
    log.info(
        "serving RPC over TCP with CURVE",
        address=settings.rpc_address,
        server_key=str(keys.server_public),
        clients=str(keys.clients),
        max_connections=settings.limits.total(),
        max_per_source=settings.limits.max_per_source,
    )
    return server
