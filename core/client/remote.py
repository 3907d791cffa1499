"""Where a client's daemon answers: the home's socket, or a daemon elsewhere that a
``corral_client_transport`` plugin reaches (over TCP with CURVE: the ``remote`` plugin)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from corral import paths
from corral.client.launcher import ADDRESS_ENV_NAME
from corral.errors import ConfigError, CorralError, DaemonError, PluginError
from corral.rpc.wire import SyncTransport

# who serves tcp:// addresses, for the error when no plugin does
NO_TRANSPORT = (
    "reaching {address} needs the plugin 'remote' (TCP with CURVE), which is not loaded: "
    "install corral with its plugins, or add remote to CORRAL_PLUGINS"
)


class Remote(Protocol):
    """A daemon elsewhere, as a ``corral_client_transport`` plugin describes it."""

    address: str  # the zmq endpoint the client connects to

    def socket_options(self) -> dict[int, Any]: ...

    def no_answer(self, timeout: float) -> CorralError: ...


def _endpoint(
    home: Path | None, remote: Remote | None, alive: Callable[[], bool]
) -> tuple[str, Callable[[], bool], dict[int, Any]]:
    """A transport's address, daemon check and socket options: the remote daemon over
    CURVE (its check pings, only after a call has waited a while), or the home's socket."""
    if remote is not None:
        return remote.address, _RemoteAlive(remote), remote.socket_options()
    assert home is not None
    return paths.rpc_address(home), alive, {}


def _remote_target(
    home: Any,
    no_daemon: bool,
    address: Any,
    server_key: Any,
    client_key: Any,
    plugins: list[Any] | None = None,
) -> Remote | None:
    """The daemon elsewhere to drive, if any; an explicit home or no_daemon beats
    CORRAL_ADDRESS. A plugin (``corral_client_transport``) tells how to reach it."""
    if address is not None and no_daemon:
        raise CorralError("address= drives a daemon that runs elsewhere: drop no_daemon=True")
    explicit_local = address is None and (home is not None or no_daemon)
    if address is None and not explicit_local:
        address = os.environ.get(ADDRESS_ENV_NAME) or None
    if address is None:
        if server_key is not None or client_key is not None:
            raise ConfigError("server_key and client_key need address='tcp://HOST:PORT'")
        return None  # the common case: a local daemon, and no plugin is loaded here
    # deferred: the entry points (~25 ms to scan), only for a daemon elsewhere
    from corral.hooks import load_plugins

    names = plugins if plugins is None or all(isinstance(p, str) for p in plugins) else None
    found = load_plugins(names).call_checked(  # firstresult: one transport or None
        "corral_client_transport", address=address, server_key=server_key, client_key=client_key
    )
    if found is None:
        raise PluginError(NO_TRANSPORT.format(address=address))
    return found


def _ping(remote: Remote, timeout: float) -> dict[str, Any] | None:
    """The daemon's ping reply over a fresh connection, or None if none comes in time."""
    transport = SyncTransport(remote.address, lambda: True, remote.socket_options())
    try:
        return transport.call("ping", {}, timeout=timeout)
    except DaemonError:
        return None
    finally:
        transport.close()


class _RemoteAlive:
    """``daemon_alive`` for a daemon elsewhere: a ping on a fresh connection, now and then.

    The transport asks while it waits for a slow reply; a daemon that answered
    within ``every`` seconds is taken to be alive without asking again.
    """

    def __init__(self, remote: Remote, every: float = 5.0, timeout: float = 3.0) -> None:
        self.remote = remote
        self.every = every
        self.timeout = timeout
        self._confirmed = time.monotonic()

    def __call__(self) -> bool:
        if time.monotonic() - self._confirmed < self.every:
            return True
        if _ping(self.remote, self.timeout) is None:
            return False
        self._confirmed = time.monotonic()
        return True
