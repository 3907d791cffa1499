"""One app name's watch: a burst of changes becomes one restart of its instances."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .filters import WatchSettings
    from .observer import Changes
    from .watchers import Watcher

MAX_BURST_MS = 10_000  # a change that never settles still restarts after this (or 10 quiets)


@dataclass(eq=False)
class AppWatch:
    """The watcher of one app name, used on the daemon's loop only."""

    name: str
    owner: Watcher
    ids: set[int] = field(default_factory=set)  # the instances a change restarts
    off: bool = False  # `corral watch stop NAME`
    forced: bool = False  # `corral watch start NAME` on an app without `watch`
    settings: WatchSettings | None = None  # of the running observer
    failed: WatchSettings | None = None  # settings whose observer failed to start
    error: str = ""  # why it is not watching, when it should
    observer: Any = None
    handler: Changes | None = None
    task: asyncio.Task | None = None
    timer: asyncio.TimerHandle | None = None
    burst: list[str] = field(default_factory=list)  # changed paths since the last restart
    burst_started: float = 0.0
    restarting: bool = False
    pending: bool = False  # a change came during the restart: another one follows
    restarts: int = 0
    last_reason: str = ""

    def changed(self, handler: Changes, path: str) -> None:
        """A change of ``path`` (relative to cwd): restart after the quiet time."""
        if handler is not self.handler or not self.ids or self.settings is None:
            return
        if path not in self.burst:
            self.burst.append(path)
        if self.restarting:
            self.pending = True
            return
        self._arm()

    def _arm(self) -> None:
        assert self.settings is not None
        loop = self.owner.loop
        now = loop.time()
        if self.timer is None:
            self.burst_started = now
        else:
            self.timer.cancel()
        quiet = self.settings.quiet_ms / 1000
        limit = max(MAX_BURST_MS / 1000, 10 * quiet)
        delay = min(quiet, max(0.0, self.burst_started + limit - now))
        self.timer = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        first, more = self.burst[0], len(self.burst) - 1
        self.burst = []
        reason = f"file changed: {first}" + (f" (and {more} more)" if more else "")
        self.restarting = True
        self.owner.loop.create_task(self._restart(reason))

    async def _restart(self, reason: str) -> None:
        daemon = self.owner.daemon
        procs = [p for p in daemon.processes() if p.pm_id in self.ids]
        try:
            results = await asyncio.gather(
                *(daemon.restart_process(p, reason=reason) for p in procs), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    daemon.log.error("watch restart failed", name=self.name, error=str(result))
        finally:
            self.restarting = False
            self.restarts += 1
            self.last_reason = reason
        if self.pending and self.burst and self.settings is not None:
            self._arm()
        self.pending = False
        self.owner._forget_if_gone(self)  # deleted while it restarted

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.burst = []
        self.pending = False

    def status(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "name": self.name,
            "watching": self.observer is not None,
            "off": self.off,
            "pm_ids": sorted(self.ids),
            "paths": list(self.handler.directories) if self.handler else [],
            "ignore": list(settings.ignore) if settings else [],
            "quiet_ms": settings.quiet_ms if settings else None,
            "polling": settings.use_polling if settings else False,
            "restarts": self.restarts,
            "last_reason": self.last_reason,
            "events_seen": self.handler.seen if self.handler else 0,
            "events_ignored": self.handler.ignored if self.handler else 0,
            "error": self.error,
        }
