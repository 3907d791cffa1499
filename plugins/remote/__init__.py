"""Remote control: the daemon's optional TCP endpoint, authenticated with zmq CURVE.

By default the daemon serves RPC on ``ipc://$CORRAL_HOME/rpc.sock`` only: a
unix socket (0600) in a 0700 directory, so only its user reaches it, and the
daemon opens no inet socket. With this plugin loaded, a TCP endpoint opens
when asked for, with ``rpc_address: tcp://HOST:PORT`` in
``$CORRAL_HOME/corral.yaml`` or ``CORRAL_RPC_ADDRESS`` in the daemon's
environment (the environment wins; an empty value turns TCP off); see
:mod:`.settings` for the acceptor's caps. It is served in addition to the unix
socket, always with CURVE: encrypted, and only for clients whose public key
is authorised (:mod:`.keys`, ``corral keys``). There is no plain-text TCP. An
authorised key is as powerful as the daemon's user: it can start any program
on this machine.

A client reaches such a daemon with ``corral.connect(address="tcp://...")``
or ``CORRAL_ADDRESS`` (:mod:`.target`); it never starts a daemon, and when
none answers within the timeout the error says to check the address and the
keys.

Without this plugin (``CORRAL_PLUGINS`` not naming ``remote``) a
``corral.yaml`` with ``rpc_address`` stops the daemon's start, naming this
plugin; a client given a ``tcp://`` address raises ``corral.PluginError``;
and there is no ``corral keys``. A home without settings never imports more
than this file: the hooks below return at once.
"""

from __future__ import annotations

import os
from typing import Any

import corral
from corral.api import DaemonAPI, read_settings

RPC_ADDRESS_ENV = "CORRAL_RPC_ADDRESS"  # .settings has it too; this file imports nothing heavy


@corral.hookimpl
def corral_daemon_settings(settings: dict[str, Any], source: str) -> list[str]:
    from .settings import SETTINGS, settings_from  # the acceptor's module: only with settings

    if settings:
        settings_from(settings, source)
    return list(SETTINGS)


@corral.hookimpl
def corral_rpc_listeners(daemon: DaemonAPI) -> list[Any] | None:
    if RPC_ADDRESS_ENV not in os.environ and not read_settings(daemon.home):
        return None  # the common case: no settings, and zmq.auth is never imported
    from .server import open_server  # zmq.auth and the acceptor (~14 ms): only for TCP

    server = open_server(daemon)
    return None if server is None else [server]


@corral.hookimpl
def corral_client_transport(address: str, server_key: Any, client_key: Any) -> Any:
    if not address.startswith("tcp://"):
        return None
    from .target import remote_target  # zmq's CURVE keys: only for a remote daemon

    return remote_target(address, server_key, client_key)


@corral.hookimpl
def corral_cli(group: Any) -> None:
    from .cli import keys  # click commands, built when the CLI asks for plugins

    group.add_command(keys)
