"""Every app's watch in one daemon: process events and RPC land here, on the loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import corral

from .debounce import AppWatch
from .filters import WatchSettings, settings_for
from .observer import STOP_JOIN_S, Changes, start_observer, stop_observer
from .options import watching


class Watcher:
    """Every app's watcher in one daemon; hooks and RPC land here, on the loop.

    Each daemon has its own (:func:`watcher`): it watches nothing before
    ``running`` is set at the daemon's start, nor after :meth:`close`.
    """

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.loop: asyncio.AbstractEventLoop = daemon.loop
        self.apps: dict[str, AppWatch] = {}
        self.running = False
        self.closed = False

    def app(self, name: str) -> AppWatch:
        if name not in self.apps:
            self.apps[name] = AppWatch(name, self)
        return self.apps[name]

    def instances(self, name: str) -> list[Any]:
        return [p for p in self.daemon.processes() if p.name == name]

    def on_event(self, event: Any) -> None:
        if not self.running:
            return
        word, name, pm_id = event.event, event.name, event.pm_id
        if word in ("start", "restart", "online", "reload"):
            proc = self.daemon.process(pm_id)
            if proc is not None and proc.name != name:
                proc = None
            wants = proc is not None and watching(proc.options)
            if not wants and name not in self.apps:
                return  # an app that watches nothing costs nothing (no scan of every app)
            app = self.app(name)
            if wants or (proc is not None and app.forced):
                app.ids.add(pm_id)
            else:
                app.ids.discard(pm_id)  # restarted with `watch` turned off
        elif word in ("stop", "delete") and event.manually and name in self.apps:
            app = self.apps[name]
            app.ids.discard(pm_id)
            if word == "delete" and not [p for p in self.instances(name) if p.pm_id != pm_id]:
                app.off = app.forced = False  # the app is gone: so are its toggles
        else:
            return
        app = self.apps[name]
        self.reconcile(app)
        self.show(app)
        if app.ids and not app.off and app.task:
            # the reply of the command that got here waits until what it watches is armed
            # (an app that watches nothing adds no wait)
            self.daemon.hold_reply(app.task)  # waited for, never cancelled

    def show(self, app: AppWatch) -> None:
        """``pm2_env.watch`` of each instance: what is watched now, as PM2 shows it (false
        once a user stopped it; true while `corral watch start` watches it regardless)."""
        for proc in self.instances(app.name):
            watched = not app.off and proc.pm_id in app.ids
            asked = watching(proc.options)
            proc.watch_shown = None if watched == asked else watched

    async def toggle(self, name: str, on: bool) -> list[dict[str, Any]]:
        """Turn watching of ``name`` (or every app) on or off; returns once it is done."""
        names = sorted({p.name for p in self.daemon.processes()}) if name == "all" else [name]
        for each in names:
            procs = self.instances(each)
            if not procs:
                known = ", ".join(sorted({p.name for p in self.daemon.processes()})) or "none"
                raise corral.NotFoundError(
                    f"no app named {each!r} (names: {known}); `corral ls` lists them"
                )
            app = self.app(each)
            app.off = not on
            if on:
                app.forced = not any(watching(p.options) for p in procs)
                app.ids = {p.pm_id for p in procs if p.state.value != "stopped"}
            self.reconcile(app)
            self.show(app)
        tasks = [task for each in names if (task := self.apps[each].task) is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        return [self.apps[each].status() for each in names]

    def wanted(self, app: AppWatch) -> WatchSettings | None:
        if app.off or not app.ids or self.closed:
            return None
        procs = [p for p in self.instances(app.name) if p.pm_id in app.ids]
        if not procs:
            return None
        return settings_for(procs, str(self.daemon.home), forced=app.forced)

    def reconcile(self, app: AppWatch) -> None:
        """Bring the app's observer in line with what it should watch, off the loop."""
        if app.task is None or app.task.done():
            app.task = self.loop.create_task(self._reconcile(app))

    async def _reconcile(self, app: AppWatch) -> None:
        try:
            await self._bring_in_line(app)
        finally:
            self._forget_if_gone(app)

    def _forget_if_gone(self, app: AppWatch) -> None:
        """Drop the state of an app name no process has any more (deleted, scaled to 0)."""
        if (
            app.observer is None
            and not app.restarting
            and self.apps.get(app.name) is app
            and not self.instances(app.name)
        ):
            app.cancel_timer()
            del self.apps[app.name]

    async def _bring_in_line(self, app: AppWatch) -> None:
        while True:
            try:
                wanted = self.wanted(app)
            except corral.CorralError as exc:
                self._failed(app, str(exc))
                wanted = None
            if wanted == app.settings or (wanted is not None and wanted == app.failed):
                return
            if app.observer is not None:
                observer, app.observer, app.handler, app.settings = app.observer, None, None, None
                app.cancel_timer()
                await self.loop.run_in_executor(None, stop_observer, observer)
                continue
            handler = Changes(wanted, self.loop, app)
            try:
                observer = await self.loop.run_in_executor(None, start_observer, wanted, handler)
            except Exception as exc:
                app.failed = wanted
                self._failed(app, f"cannot watch {wanted.cwd}: {type(exc).__name__}: {exc}")
                return
            if self.closed:
                await self.loop.run_in_executor(None, stop_observer, observer)
                return
            app.observer, app.handler, app.settings, app.failed = observer, handler, wanted, None
            app.error = ""
            self.daemon.log.info(
                "watching", name=app.name, paths=handler.directories, polling=wanted.use_polling
            )
            if wanted.unused:
                self.daemon.log.warning(
                    "watch_options keys ignored (chokidar's, unused by corral)",
                    name=app.name,
                    keys=list(wanted.unused),
                )

    def _failed(self, app: AppWatch, message: str) -> None:
        """Log and emit ``watch error`` once per distinct reason."""
        if message == app.error:
            return
        app.error = message
        self.daemon.log.error("watch failed", name=app.name, error=message)
        for proc in self.instances(app.name):
            if proc.pm_id in app.ids:
                self.daemon.emit(proc, "watch error", reason=message)

    def status(self) -> list[dict[str, Any]]:
        return [self.apps[name].status() for name in sorted(self.apps)]

    def close(self) -> None:
        """Stop every observer; returns within about STOP_JOIN_S."""
        self.running, self.closed = False, True
        observers = []
        for app in self.apps.values():
            app.cancel_timer()
            if app.observer is not None:
                observers.append(app.observer)
                app.observer = app.handler = app.settings = None
        for observer in observers:
            observer.stop()
        deadline = time.monotonic() + STOP_JOIN_S
        for observer in observers:
            observer.join(max(0.0, deadline - time.monotonic()))
