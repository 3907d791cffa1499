"""Long batches (a start of 1,000 apps) hand the loop to other calls every few ms.

A start spawns its apps one after another on the event loop; a ``list`` sent
meanwhile waited for the whole batch (4 s at 1,000 apps). A :class:`Pacer`
awaits ``TURNS`` turns of the loop whenever ``PACE`` seconds of the batch have
run, so other calls are answered within about that long plus their own cost: a
request takes three turns (zmq's read, its task, its handler and reply), so with
one turn per hand-over a ``ping`` waited three of them (30 ms, not 10).
"""

from __future__ import annotations

import asyncio
import time

PACE = 0.01  # seconds of a batch between two hand-overs to other calls
TURNS = 4  # turns of the loop per hand-over; one with nothing to run costs ~10 us


class Pacer:
    """``await pacer.turn()`` between the items of a batch."""

    def __init__(self, every: float = PACE) -> None:
        self.every = every
        self._since = time.monotonic()

    async def turn(self) -> None:
        """``TURNS`` turns of the loop to other calls, once ``every`` seconds have run."""
        if time.monotonic() - self._since < self.every:
            return
        for _ in range(TURNS):
            await asyncio.sleep(0)
        self._since = time.monotonic()


__all__ = ["PACE", "TURNS", "Pacer"]
