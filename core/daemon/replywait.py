"""Work a command's reply waits for, started by plugins on its behalf.

A command's reply says what is true when the caller gets it: once ``start()``
returns with an app that has ``watch``, a file written next is seen. A plugin
that does such work off the loop (the watch plugin starts its observer on a
thread) hands the awaitable to :meth:`corral.daemon.kernel.Daemon.hold_reply` from the
hook the command triggered; the command's reply then waits for it, at most
:data:`LIMIT_S`. Outside a command (a crash restart, a timer) nothing is held,
and a command that triggers no such work waits for nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar
from typing import Any

LIMIT_S = 10.0  # a reply waits this long at most for what it holds


class _Held:
    def __init__(self) -> None:
        self.items: list[Awaitable[Any]] = []
        self.open = True


_CURRENT: ContextVar[_Held | None] = ContextVar("corral_reply_waits", default=None)


def hold(awaitable: Awaitable[Any]) -> bool:
    """Make the reply of the command running now wait for ``awaitable``; False (and
    nothing held) outside a command."""
    held = _CURRENT.get()
    if held is None or not held.open:
        return False
    held.items.append(awaitable)
    return True


@contextlib.asynccontextmanager
async def collecting() -> AsyncIterator[None]:
    """Around one command: on a normal exit, wait for what was held during it."""
    held = _Held()
    token = _CURRENT.set(held)
    try:
        yield
        deadline = time.monotonic() + LIMIT_S
        waited = 0
        while waited < len(held.items):  # what one wait's work holds in turn
            batch = [asyncio.ensure_future(a) for a in held.items[waited:]]
            waited = len(held.items)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait(batch, timeout=left)  # which cancels none of them
    finally:
        held.open = False  # a timer the command scheduled holds nothing after it
        _CURRENT.reset(token)
