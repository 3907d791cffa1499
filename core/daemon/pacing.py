"""Long batches (a start of 1,000 apps) hand the loop to other calls every few ms.

A start spawns its apps one after another on the event loop; a ``list`` sent
meanwhile waited for the whole batch (4 s at 1,000 apps). A :class:`Pacer`
awaits one turn of the loop whenever ``PACE`` seconds of the batch have run,
so other calls are answered within about that long plus their own cost.
"""

from __future__ import annotations

import asyncio
import time

PACE = 0.01  # seconds of a batch between two turns handed to other calls


class Pacer:
    """``await pacer.turn()`` between the items of a batch."""

    def __init__(self, every: float = PACE) -> None:
        self.every = every
        self._since = time.monotonic()

    async def turn(self) -> None:
        """One turn of the loop to other calls, once ``every`` seconds have run."""
        if time.monotonic() - self._since < self.every:
            return
        await asyncio.sleep(0)
        self._since = time.monotonic()


__all__ = ["PACE", "Pacer"]
