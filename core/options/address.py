"""The ``listen`` option's address: ``host:port``, ``:port`` or ``unix:/path``, parsed."""

from __future__ import annotations

from corral.errors import OptionError, shorten


def parse_address(value: str | int) -> tuple[str, str | int]:
    """``("unix", path)`` or ``("tcp", "host:port")`` parts, or OptionError naming ``listen``."""
    text = str(value).strip()
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise OptionError(
                "listen 'unix:' needs a path, e.g. unix:/run/app.sock", field="listen"
            )
        return "unix", path
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise OptionError(
            f"listen {shorten(value)} is not an address: use host:port, :port or unix:/path",
            field="listen",
        )
    return "tcp", f"{host.strip('[]')}:{port}"
