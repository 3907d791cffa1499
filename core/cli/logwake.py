"""Waking ``corral logs`` when a followed file changes, instead of reading every file
ten times a second.

The directories of the followed files are watched with watchdog (inotify on
Linux). A change (a write, a new file, a rename, a delete) wakes the follower,
which then reads every file as before; with nothing changing it still reads them
once a second, which covers what inotify cannot see (a network filesystem, a
directory it could not watch). Opens and closes are not changes: the follower's
own reads must not wake it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from typing import Any

CHANGES = frozenset({"modified", "created", "deleted", "moved", "closed"})


class Waker:
    """``wait(timeout)`` returns early once a watched directory changed."""

    def __init__(self) -> None:
        self.changed = threading.Event()
        self.dirs: set[str] = set()
        self._observer: Any = None

    def watch(self, paths: Iterable[str]) -> None:
        """Watch the directories of ``paths`` (each once); one that cannot be watched
        is left to the once-a-second read."""
        for folder in {os.path.dirname(os.path.abspath(p)) for p in paths} - self.dirs:
            self.dirs.add(folder)
            with contextlib.suppress(Exception):  # watchdog missing, inotify limits, ...
                self._observe(folder)

    def _observe(self, folder: str) -> None:
        # deferred: watchdog may be missing: the caller then polls
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        changed = self.changed

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in CHANGES:
                    changed.set()

        if self._observer is None:
            # deferred: watchdog may be missing: the caller then polls
            from watchdog.observers import Observer

            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        self._observer.schedule(Handler(), folder, recursive=False)

    def wait(self, timeout: float) -> bool:
        """Sleep until a change or ``timeout``; whether a change woke it."""
        woke = self.changed.wait(timeout)
        self.changed.clear()
        return woke

    def close(self) -> None:
        if self._observer is not None:
            with contextlib.suppress(Exception):
                self._observer.stop()
            self._observer = None
