"""The daemon gives freed heap back once a burst of changes is over (corral.supervisor.heaptrim)."""

from __future__ import annotations

import asyncio
import platform

import pytest

from corral.supervisor import heaptrim
from corral.supervisor.heaptrim import HeapTrim

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")


@glibc
def test_malloc_trim_runs_on_glibc() -> None:
    assert heaptrim.malloc_trim() is True


@glibc
def test_a_burst_of_pokes_trims_once_when_it_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heaptrim, "QUIET_SECONDS", 0.05)

    async def burst() -> tuple[int, int]:
        trim = HeapTrim(asyncio.get_running_loop())
        for _ in range(100):
            trim.poke()
            await asyncio.sleep(0)
        during = trim.trims
        while trim.trims == 0:  # bounded by the test timeout; the quiet period is 50 ms
            await asyncio.sleep(0.01)
        return during, trim.trims

    during, after = asyncio.run(asyncio.wait_for(burst(), 10))
    assert (during, after) == (0, 1)


@glibc
def test_pokes_that_never_stop_still_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    """A change every few ms (a crash loop) does not hold the trim off for ever."""
    monkeypatch.setattr(heaptrim, "QUIET_SECONDS", 0.05)
    monkeypatch.setattr(heaptrim, "LONGEST_WAIT", 0.2)

    async def storm() -> int:
        trim = HeapTrim(asyncio.get_running_loop())
        while trim.trims == 0:
            trim.poke()
            await asyncio.sleep(0.005)
        return trim.trims

    assert asyncio.run(asyncio.wait_for(storm(), 10)) == 1
