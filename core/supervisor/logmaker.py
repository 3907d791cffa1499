"""Corral's own log files of a start's apps, made on a thread.

Making a file waits on the filesystem's journal: 20 us to 0.7 ms a file on this
kind of machine, so the two files of each of 1,000 apps cost a start from 0.04 to
1.4 s of the daemon's loop. A start of many apps
(:func:`corral.daemon.commands.creation.create_all`) hands the files it names in
``$CORRAL_HOME/logs`` to one thread, as PM2's libuv opens its streams off node's
loop; each app's launch waits for its own files, so the files are made while the
daemon registers and launches the apps before them. A file that cannot be made fails
that launch as a file opened at once would (the whole start is undone). A path the
user gave is still opened at once, with the app's rights
(:class:`corral.supervisor.logs.LogFiles`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable, Iterable
from pathlib import Path


class LogMaker:
    """The files being made on the thread, by path, until their launch asks for them."""

    def __init__(self) -> None:
        self._pending: dict[Path, concurrent.futures.Future[None]] = {}
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None  # started on first use

    def submit(self, path: Path, opener: Callable[[], int]) -> None:
        """Make ``path`` on the thread (``opener`` opens it, creating it)."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "corral-log-maker")
        self._pending[path] = self._pool.submit(_make, path, opener)

    def forget(self, path: Path) -> None:
        """No launch will ask for ``path`` (its app is gone): the thread still makes it."""
        self._pending.pop(path, None)

    async def made(self, paths: Iterable[Path]) -> None:
        """Wait until ``paths`` are made; the OSError of one that could not be."""
        for path in paths:
            making = self._pending.pop(path, None)
            if making is not None:
                await asyncio.wrap_future(making)


def _make(path: Path, opener: Callable[[], int]) -> None:
    try:
        os.close(opener())
    except OSError as exc:
        exc.filename = str(path)  # the opener names it relative to the directory
        raise
