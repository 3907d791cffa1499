"""watch's watchdog observer: start and stop one, and the handler that filters its events."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

import corral

from .filters import WatchSettings

if TYPE_CHECKING:
    from .debounce import AppWatch

STOP_JOIN_S = 1.0
# chokidar's event words are add/change/unlink; watchdog also reports opens and closes
CHANGES = frozenset({"created", "modified", "deleted", "moved"})


class Changes(FileSystemEventHandler):
    """Runs on the observer's thread: filters events and hands accepted ones to the loop."""

    def __init__(self, settings: WatchSettings, loop: asyncio.AbstractEventLoop, app: AppWatch):
        super().__init__()
        self.settings = settings
        self.loop = loop
        self.app = app
        self.seen = 0  # events of a changing kind
        self.ignored = 0
        self.directories: list[str] = []  # what the observer was given

    def dispatch(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a directory's own mtime: its files' events tell more
        self.seen += 1
        paths = [event.src_path, getattr(event, "dest_path", "")]
        for path in (os.fsdecode(p) for p in paths if p):
            if self.settings.accepts(path):
                with contextlib.suppress(RuntimeError):  # the loop closed
                    self.loop.call_soon_threadsafe(
                        self.app.changed, self, self.settings.relative(path)
                    )
                return
        self.ignored += 1


def start_observer(settings: WatchSettings, handler: Changes) -> Any:
    """A started observer for ``settings`` (blocks while inotify walks the tree)."""
    if settings.use_polling:
        observer: Any = PollingObserver(timeout=settings.interval_ms / 1000)
    else:
        observer = Observer()
    extra = {"follow_symlink": True} if settings.follow_symlinks else {}
    try:
        for directory, recursive in settings.directories():
            observer.schedule(handler, directory, recursive=recursive, **extra)
            handler.directories.append(directory)
    except TypeError as exc:
        raise corral.PluginError(
            f"watch_options.follow_symlinks needs watchdog >= 7 ({exc})"
        ) from None
    observer.start()
    return observer


def stop_observer(observer: Any, timeout: float = STOP_JOIN_S) -> None:
    observer.stop()
    observer.join(timeout)
