"""The client's side: the remote daemon a client was told to reach, and the keys to reach it.

A client names the daemon and its keys::

    corral.connect(address="tcp://host:5800",
                   server_key="server.key",          # a file, or the 40-character key
                   client_key="client.key_secret")

or sets ``CORRAL_ADDRESS``, ``CORRAL_SERVER_KEY`` and ``CORRAL_CLIENT_KEY``
(which the CLI reads too). Keys not given are looked for in the local
``$CORRAL_HOME/keys/``, which is what a client on the daemon's own machine
needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from corral import ConfigError, DaemonError
from corral.api import corral_home

from .keys import Keys, keys_dir, read_public_key, read_secret_key
from .settings import (
    ADDRESS_ENV,
    CLIENT_KEY_ENV,
    SERVER_KEY_ENV,
    check_tcp_address,
    is_ipv6,
)


@dataclass(frozen=True)
class Remote:
    """A remote daemon's address and the keys to reach it (what the client's transport needs)."""

    address: str
    server_key: bytes  # z85, the daemon's public key
    public_key: bytes  # z85, this client's
    secret_key: bytes  # z85, this client's

    def socket_options(self) -> dict[int, Any]:
        """What a DEALER socket needs set before it connects."""
        options: dict[int, Any] = {
            zmq.CURVE_SERVERKEY: self.server_key,
            zmq.CURVE_PUBLICKEY: self.public_key,
            zmq.CURVE_SECRETKEY: self.secret_key,
        }
        if is_ipv6(self.address):
            options[zmq.IPV6] = 1
        return options

    def no_answer(self, timeout: float) -> DaemonError:
        """The error of a client that got no answer within ``timeout`` seconds."""
        return DaemonError(
            f"no corral daemon answered at {self.address} within {timeout:g} s: check the "
            "address, that the daemon has rpc_address set, that server_key is its "
            "keys/server.key and that your client key is in its keys/clients/"
        )


def remote_target(
    address: str | None = None,
    server_key: str | bytes | os.PathLike | None = None,
    client_key: str | os.PathLike | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Remote | None:
    """The remote daemon a client was told to use (arguments, then environment), or None.

    Keys not given are the local ``$CORRAL_HOME/keys/server.key`` and
    ``keys/client.key_secret``, when they exist.
    """
    environ = os.environ if environ is None else environ
    address = address or environ.get(ADDRESS_ENV) or None
    if address is None:
        if server_key is not None or client_key is not None:
            raise ConfigError("server_key and client_key need address='tcp://HOST:PORT'")
        return None
    check_tcp_address(address, "address")
    local = Keys(keys_dir(corral_home()))
    server_key = server_key or environ.get(SERVER_KEY_ENV) or _existing(local.server_public)
    client_key = client_key or environ.get(CLIENT_KEY_ENV) or _existing(local.client_secret)
    if not server_key:
        raise ConfigError(
            f"connecting to {address} needs server_key (or {SERVER_KEY_ENV}): "
            "the daemon's keys/server.key, or the key `corral keys` prints there"
        )
    if not client_key:
        raise ConfigError(
            f"connecting to {address} needs client_key (or {CLIENT_KEY_ENV}): a .key_secret "
            "file whose public key is in the daemon's keys/clients/ (its keys/client.key_secret)"
        )
    public, secret = read_secret_key(client_key, "client_key")
    return Remote(address, read_public_key(server_key, "server_key"), public, secret)


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None
