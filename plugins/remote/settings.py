"""The remote plugin's settings: ``rpc_address`` and the TCP acceptor's caps, in ``corral.yaml``.

``rpc_address: tcp://HOST:PORT`` in ``$CORRAL_HOME/corral.yaml``, or
``CORRAL_RPC_ADDRESS`` in the daemon's environment (the environment wins; an
empty value turns TCP off), opens the TCP endpoint. ``tcp_max_connections``
(256), ``tcp_max_per_source`` (16 per IP address) and
``tcp_handshake_timeout`` (10 seconds) cap its acceptor. A bad value stops the
daemon before it binds anything, with a one-line error naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral import ConfigError
from corral.api import read_settings, settings_file, shorten

from .acceptor import Limits

RPC_ADDRESS_ENV = "CORRAL_RPC_ADDRESS"
SERVER_KEY_ENV = "CORRAL_SERVER_KEY"
CLIENT_KEY_ENV = "CORRAL_CLIENT_KEY"
SETTINGS = ("rpc_address", "tcp_max_connections", "tcp_max_per_source", "tcp_handshake_timeout")
EXAMPLE = "tcp://127.0.0.1:5800"
ADDRESS_ENV = "CORRAL_ADDRESS"


@dataclass(frozen=True)
class Settings:
    """What ``corral.yaml`` and the environment ask of the daemon."""

    rpc_address: str | None = None  # the TCP endpoint; None: the unix socket only
    # connections the TCP endpoint accepts (corral.plugins.remote.acceptor)
    limits: Limits = field(default_factory=Limits)


def load_settings(home: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """The daemon's settings for ``home``; ConfigError naming the setting when one is bad."""
    return settings_from(read_settings(home), settings_file(home), environ)


def settings_from(
    values: Mapping[str, Any], path: Path | str, environ: Mapping[str, str] | None = None
) -> Settings:
    """The settings in ``values`` (``corral.yaml`` at ``path``) and ``environ``."""
    environ = os.environ if environ is None else environ
    address, source = values.get("rpc_address"), f"rpc_address in {path}"
    if RPC_ADDRESS_ENV in environ:
        address, source = environ[RPC_ADDRESS_ENV], f"rpc_address (from {RPC_ADDRESS_ENV})"
    limits = Limits(
        **{
            key[len("tcp_") :]: _positive(values[key], f"{key} in {path}", key.endswith("timeout"))
            for key in SETTINGS[1:]
            if key in values
        }
    )
    if address is None or address == "":
        return Settings(limits=limits)
    return Settings(rpc_address=check_tcp_address(address, source), limits=limits)


def _positive(value: Any, source: str, fraction: bool) -> Any:
    """``value`` if it is a number above 0 (an integer unless ``fraction``), else ConfigError."""
    kinds = (int, float) if fraction else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        what = "a number of seconds above 0" if fraction else "a whole number above 0"
        raise ConfigError(f"{source} must be {what}, got {shorten(value)}")
    return value


def check_tcp_address(value: Any, source: str) -> str:
    """``value`` if it is ``tcp://HOST:PORT``, else ConfigError naming ``source``."""
    if not isinstance(value, str):
        raise ConfigError(f"{source} must be a string like {EXAMPLE}, got {type(value).__name__}")
    if not value.startswith("tcp://"):
        raise ConfigError(
            f"{source} {shorten(value)} must be tcp://HOST:PORT, e.g. {EXAMPLE} "
            "(the local unix socket is always served)"
        )
    host, sep, port = value[len("tcp://") :].rpartition(":")
    if not sep or not host:
        raise ConfigError(
            f"{source} {shorten(value)} has no port: write tcp://HOST:PORT, e.g. {EXAMPLE}"
        )
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{source} {shorten(value)}: the port must be a number from 1 to 65535")
    if any(c.isspace() or c in "/?#" for c in host):
        raise ConfigError(
            f"{source} {shorten(value)}: {shorten(host)} is not a host name or IP address"
        )
    return value


def is_ipv6(address: str) -> bool:
    return address.startswith("tcp://[")
