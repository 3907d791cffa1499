"""The client API: ``connect()``, ``Client`` (synchronous) and ``AsyncClient``.

Both clients share one definition of every call (corral.client.calls); they differ
only in how a request travels. Names follow PM2's API in snake_case. This module
is where the public names live; the code is in the client_* modules.
"""

from __future__ import annotations

from corral.client.aio import AsyncClient
from corral.client.connection import connect, current
from corral.client.sync import Client
from corral.errors import CorralWarning  # defined with the errors, below every module

__all__ = ["AsyncClient", "Client", "CorralWarning", "connect", "current"]
