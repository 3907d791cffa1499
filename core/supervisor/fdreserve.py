"""Spare file descriptors, held so the daemon can still act when its table is full.

A daemon at its ``RLIMIT_NOFILE`` (too many clients, a leaking plugin) could
not spawn a restart, write its state file or answer its own user. It keeps a
few descriptors of ``/dev/null`` open; an operation that fails with EMFILE
(or ENFILE) gives them back, runs once more, and takes them again after.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
RESERVE = 16  # enough for a spawn (channel, pipes, exec check, pidfd) and a state write
OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)


class FdReserve:
    """``count`` descriptors held in reserve; :meth:`call` spends them on EMFILE."""

    def __init__(self, count: int = RESERVE) -> None:
        self.count = count
        self._fds: list[int] = []
        self.fill()

    def fill(self) -> None:
        """Take the reserve back, as far as the table has room."""
        while len(self._fds) < self.count:
            try:
                self._fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                return

    def release(self) -> None:
        while self._fds:
            with contextlib.suppress(OSError):
                os.close(self._fds.pop())

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)``; on EMFILE once more with the reserve given back."""
        try:
            return fn(*args)
        except OSError as exc:
            if exc.errno not in OUT_OF_FDS:
                raise
        self.release()
        try:
            return fn(*args)
        finally:
            self.fill()

    def close(self) -> None:
        self.release()


def out_of_fds(exc: BaseException) -> bool:
    """Whether ``exc`` says a descriptor table is full."""
    return isinstance(exc, OSError) and exc.errno in OUT_OF_FDS


def fd_limit() -> int:
    """This process's soft RLIMIT_NOFILE (a large number when unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20
