"""The systemd exporter's ``listen``: the address of an app's .socket unit, and its PORT."""

from __future__ import annotations

import ipaddress
from typing import Any

from corral import OptionError

from .systemd_command import absolute, is_node_app
from .systemd_quoting import plain_value


def listen_stream(options: dict[str, Any]) -> str | None:
    """The ``listen`` address as ``ListenStream=`` takes it (``8080``, ``10.0.0.5:8080``,
    ``[::1]:8080``, a socket path), or None: no listen, or one systemd cannot hold for the
    app. A node app binds its own port under systemd (corral's listen shim is not there),
    so it gets no socket unit: its warning says so. OptionError for a host name: systemd
    parses IP addresses only."""
    listen = str(options.get("listen") or "").strip()
    if not listen or is_node_app(options):
        return None
    if listen.startswith("unix:"):
        path = listen[5:]
        return plain_value(absolute(path, "/", "listen"), "listen") if path[:1] == "/" else None
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return None
    host = host.strip("[]")
    if not host:
        return port
    address = _ip_address(host, listen, port)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _ip_address(host: str, listen: str, port: str) -> Any:
    """``host`` as an IP address for ListenStream=: ``localhost`` is 127.0.0.1, where
    corral binds it (an IPv4 socket, the host having no ':'); any other name is refused,
    as the target's names are not this machine's to resolve."""
    if host.lower() == "localhost":
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.version == 6 and address.scope_id:
        raise OptionError(
            f"listen {listen!r}: systemd's ListenStream= takes no IPv6 zone "
            f"(%{address.scope_id}): give the address without it",
            field="listen",
        )
    if address is None:
        raise OptionError(
            f"listen {listen!r}: systemd's ListenStream= takes an IP address, not a host "
            f"name (the target resolves its names, not this export): give its IP address "
            f"(listen: 'IP:{port}'), or ':{port}' for every address",
            field="listen",
        )
    return address


def listen_port(options: dict[str, Any]) -> str | None:
    """The port corral puts in PORT for a tcp ``listen`` (ManagedProcess.child_env), for
    every app: a node app without its socket unit binds this port itself. None for a
    unix socket, or port 0 (corral's PORT is then the port the kernel picked)."""
    listen = str(options.get("listen") or "").strip()
    if not listen or listen.startswith("unix:"):
        return None
    port = listen.rpartition(":")[2]
    return port if port.isdigit() and int(port) != 0 else None


def listen_host(options: dict[str, Any]) -> str:
    """The host of a tcp ``listen`` (``127.0.0.1``), or "" for all addresses."""
    return str(options.get("listen") or "").strip().rpartition(":")[0].strip("[]")
