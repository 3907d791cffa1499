"""The kernel-wide scan for strays: one /proc scan per turn of the loop, shared by
the stops of that turn (a "stop all" or kill_daemon stops every slot at once)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from corral.supervisor.kill import scan_strays

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon


class StrayScan:
    """``daemon.strays``: :meth:`find` batches the markers asked for in one loop turn."""

    def __init__(self, kernel: Daemon) -> None:
        self.kernel = kernel
        # the /proc scan pending for this turn of the loop, with the markers asked for;
        # the stops of one "stop all" or kill_daemon share it
        self._stray_scan: tuple[asyncio.Future, set[str]] | None = None

    async def find(self, marker: str) -> list[int]:
        """Pids carrying ``marker`` outside the groups of running children."""
        if self._stray_scan is None:
            assert self.kernel.loop is not None
            self._stray_scan = (self.kernel.loop.create_future(), set())
            self.kernel.loop.call_soon(self._scan)
        future, markers = self._stray_scan
        markers.add(marker)
        return (await asyncio.shield(future)).get(marker, [])

    def _scan(self) -> None:
        assert self._stray_scan is not None
        future, markers = self._stray_scan
        self._stray_scan = None
        try:
            found = scan_strays(markers, skip_groups=set(self.kernel.children))
        except Exception as exc:  # a stop goes on without strays rather than hang
            self.kernel.log.error("cannot scan for strays", error=f"{type(exc).__name__}: {exc}")
            found = {}
        future.set_result(found)
