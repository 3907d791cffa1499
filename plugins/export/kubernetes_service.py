"""The Kubernetes exporter's Service: the TCP port of ``listen`` or ``port``, exposed."""

from __future__ import annotations

import ipaddress
from typing import Any

from .kubernetes_names import NAME_LABEL, metadata
from .kubernetes_settings import Settings

# addresses of the pod itself
LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1", "0:0:0:0:0:0:0:1"))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is the pod itself: ``localhost``, 127.0.0.0/8, ``::1``."""
    if host.lower() in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_host(options: dict[str, Any]) -> str | None:
    """The host of a tcp ``listen`` (``""``: every address), None for none or unix:."""
    listen = options.get("listen")
    if not listen or str(listen).strip().startswith("unix:"):
        return None
    host, sep, _port = str(listen).strip().rpartition(":")
    return host.strip("[]") if sep else ""


def service_port(options: dict[str, Any], notes: list[str]) -> int | None:
    """The TCP port of ``listen`` (else ``port``) that a Service exposes, or None."""
    listen = options.get("listen")
    if listen:
        text = str(listen).strip()
        if text.startswith("unix:"):
            notes.append(f"listen {text!r} is a unix socket: no Service (a Service is TCP)")
            return None
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "", text
        if is_loopback(host.strip("[]")):
            notes.append(
                f"listen {text!r} is loopback only: the Service cannot reach it; "
                f"listen on ':{port}'"
            )
        return checked_port("listen", port, notes)
    if options.get("port") is not None:
        return checked_port("port", str(options["port"]), notes)
    return None


def checked_port(option: str, port: str, notes: list[str]) -> int | None:
    if port.isdigit() and 0 < int(port) < 65536:
        return int(port)
    notes.append(f"{option} port {port!r} is no fixed port (1-65535): no Service")
    return None


def service(name: str, labels: dict, settings: Settings, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, labels, settings),
        "spec": {
            "selector": {NAME_LABEL: name},
            "ports": [{"port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
