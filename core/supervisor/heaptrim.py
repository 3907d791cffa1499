"""Handing freed heap back to the system once a burst of work is over (glibc's malloc_trim).

Starting a thousand apps decodes a request of a thousand environments and builds
and frees many small objects between the apps' long-lived ones. glibc keeps the
freed pages of such a fragmented heap: about 4 KiB per app stays resident,
unused, after the start. ``malloc_trim(0)`` gives every wholly free page back
(``MADV_DONTNEED``); it takes a few milliseconds, so it runs once the daemon has
been quiet for a second after a change, not per change. Elsewhere than glibc it
does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable

__all__ = ["HeapTrim", "malloc_trim"]

QUIET_SECONDS = 1.0  # the trim waits for this long without a poke
LONGEST_WAIT = 30.0  # ... but no longer than this after the first poke it waits for


def _libc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # this process's symbols, libc's among them: no ldconfig run
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim with
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _libc_trim()


def malloc_trim() -> bool:
    """Give the heap's free pages back to the system now; False where it cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class HeapTrim:
    """Trims the heap once the loop has been quiet for :data:`QUIET_SECONDS` after a
    :meth:`poke` (at the latest :data:`LONGEST_WAIT` after the first one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timer: asyncio.TimerHandle | None = None
        self._first: float | None = None  # when the first poke not yet trimmed came
        self.trims = 0

    def poke(self) -> None:
        """Something changed (apps added, removed, restarted): trim when it is over."""
        if _TRIM is None:
            return
        now = time.monotonic()
        if self._first is None:
            self._first = now
        if self._timer is not None:
            if now - self._first >= LONGEST_WAIT:
                return  # the timer set last stays: it fires within QUIET_SECONDS
            self._timer.cancel()
        self._timer = self._loop.call_later(QUIET_SECONDS, self._trim)

    def _trim(self) -> None:
        self._timer = self._first = None
        malloc_trim()
        self.trims += 1

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
