"""The systemd exporter's ``listen``: the address of an app's .socket unit, and its PORT."""

from __future__ import annotations

from typing import Any

from .systemd_command import absolute, is_node_app
from .systemd_quoting import plain_value


def listen_stream(options: dict[str, Any]) -> str | None:
    """The ``listen`` address as ``ListenStream=`` takes it (``8080``, ``host:8080``, a
    socket path), or None: no listen, or one systemd cannot hold for the app. A node app
    binds its own port under systemd (corral's listen shim is not there), so it gets no
    socket unit: its warning says so."""
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
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
