"""The client API: ``connect()``, ``Client`` (synchronous) and ``AsyncClient``.

Both clients share one definition of every call (corral.client.calls); they differ
only in how a request travels. Names follow PM2's API in snake_case. This module
is where the public names live, loaded on first use: a command that only boots the
daemon (corral.client.launcher) does not load pyzmq and the clients with it.
"""

from __future__ import annotations

import importlib

from corral.errors import CorralWarning  # defined with the errors, below every module

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before the daemon's spawn
if TYPE_CHECKING:
    from typing import Any

    from corral.client.aio import AsyncClient
    from corral.client.connection import connect, current
    from corral.client.sync import Client

__all__ = ["AsyncClient", "Client", "CorralWarning", "connect", "current"]

# public name -> the module of this package that defines it
_WHERE = {"AsyncClient": "aio", "Client": "sync", "connect": "connection", "current": "connection"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'corral.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
