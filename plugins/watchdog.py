"""watchdog: end an app that stops saying it is alive, as systemd's ``WatchdogSec=``.

Option (per app): ``watchdog``, the timeout (``"10s"``, or ms; unset or ``0``:
off; at least 100 ms otherwise). Each child gets ``WATCHDOG_USEC`` (the timeout in
microseconds) and ``WATCHDOG_PID`` (its own pid: it is started through
``sh -c 'WATCHDOG_PID=$$ ... exec'``), as systemd sets them, so
``sd_watchdog_enabled()`` and ``corral.child.watchdog_interval()`` work in it.

The child (or a process of its tree) sends ``WATCHDOG=1`` on ``NOTIFY_SOCKET``
(``corral.child.heartbeat()``; ``sd_notify(0, "WATCHDOG=1")`` in C; a node app
``process.send({type: "corral:notify", data: "WATCHDOG=1"})``) before each timeout
runs out, counted from its spawn, then from its last beat. A child that misses one is
ended as a crash (its ``kill_signal``, SIGKILL after ``kill_timeout``) and its restart
policy decides; the ``exit`` event's reason starts with ``watchdog``. As in systemd,
``WATCHDOG=trigger`` ends it at once, and ``WATCHDOG_USEC=N`` sets a new timeout
from then on.

RPC: ``watchdog`` -> ``{"<pid>": {"name", "timeout", "last_beat"}}`` (epoch ms).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import corral

# Its hooks only touch loop state.
corral_runs_on_loop = True

MIN_MS = 100
MAX_MS = 7 * 86_400_000
STATE_KEY = "watchdog.timers"
_RUNNING = (corral.ProcessState.ONLINE, corral.ProcessState.LAUNCHING)
# the child's own pid in WATCHDOG_PID: the shell execs the program, so the pid stays
_OWN_PID = 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@"'


def check_timeout(value: int) -> int:
    if 0 < value < MIN_MS or value > MAX_MS:
        raise ValueError(f"use 0 (off), or from {MIN_MS} ms to a week ({MAX_MS} ms), got {value}")
    return value


@dataclass(eq=False)
class Timer:
    """One child's watchdog."""

    app: Any
    pid: int
    seconds: float
    handle: asyncio.TimerHandle | None = None
    last_beat: int | None = None  # epoch ms
    ended: bool = False


class Watchdogs:
    """Each daemon's timers, on its loop."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.timers: dict[int, Timer] = {}  # pid -> its timer

    def before_spawn(self, app: Any, spawn: Any) -> None:
        timeout_ms = app.options.get("watchdog") or 0
        if not timeout_ms:
            return
        spawn.env["WATCHDOG_USEC"] = str(int(timeout_ms) * 1000)
        spawn.env.pop("WATCHDOG_PID", None)  # never another process's, inherited
        spawn.argv = ["/bin/sh", "-c", _OWN_PID, *spawn.argv]
        spawn.when_spawned(lambda pid: self.arm(Timer(app, pid, timeout_ms / 1000)))

    def arm(self, timer: Timer) -> None:
        old = self.timers.get(timer.pid)
        if old is not None and old is not timer and old.handle is not None:
            old.handle.cancel()
        self.timers[timer.pid] = timer
        if timer.handle is not None:
            timer.handle.cancel()
        timer.handle = self.daemon.loop.call_later(timer.seconds, self.expire, timer, "")

    def notify(self, pid: int, fields: dict[str, str]) -> None:
        timer = self.timers.get(pid)
        if timer is None or timer.ended:
            return
        if "WATCHDOG_USEC" in fields:
            try:
                usec = int(fields["WATCHDOG_USEC"])
            except ValueError:
                usec = 0
            if usec > 0:
                timer.seconds = usec / 1_000_000
                self.arm(timer)
        beat = fields.get("WATCHDOG")
        if beat == "1":
            timer.last_beat = int(time.time() * 1000)
            self.arm(timer)
        elif beat == "trigger":
            self.expire(timer, "WATCHDOG=trigger")

    def expire(self, timer: Timer, why: str) -> None:
        """The child missed its beat (or asked for it): ended as a crash, once."""
        if timer.ended:
            return
        timer.ended = True
        if timer.handle is not None:
            timer.handle.cancel()
        self.timers.pop(timer.pid, None)
        app = self.daemon.process(timer.app.pm_id)
        if app is not timer.app or app.pid != timer.pid or app.state not in _RUNNING:
            return  # gone or replaced meanwhile
        reason = why or f"no WATCHDOG=1 within {timer.seconds:g} s"
        reason = f"watchdog: {reason}"
        task = self.daemon.loop.create_task(self.daemon.fail_process(app, reason=reason))
        task.add_done_callback(lambda t: self._ended(timer, t))

    def _ended(self, timer: Timer, task: Any) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.daemon.log.error(
                "watchdog restart failed", name=timer.app.name, error=repr(task.exception())
            )

    def prune(self) -> None:
        """Drop the timers of children that are no longer their slot's current one."""
        for pid, timer in list(self.timers.items()):
            app = self.daemon.process(timer.app.pm_id)
            if app is None or app.pid != pid or app.state not in _RUNNING:
                if timer.handle is not None:
                    timer.handle.cancel()
                del self.timers[pid]

    def stats(self) -> dict[str, Any]:
        return {
            str(pid): {"name": t.app.name, "timeout": t.seconds, "last_beat": t.last_beat}
            for pid, t in sorted(self.timers.items())
        }

    def stop(self) -> None:
        for timer in self.timers.values():
            if timer.handle is not None:
                timer.handle.cancel()
        self.timers.clear()


def watchdogs(daemon: Any) -> Watchdogs:
    return daemon.state(STATE_KEY, lambda: Watchdogs(daemon))


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "watchdog",
            "ms",
            help="end the app when it sends no WATCHDOG=1 for this long (systemd's "
            "WatchdogSec=; corral.child.heartbeat()); 0: off",
            validate=check_timeout,
        )
    ]


@corral.hookimpl
def corral_before_spawn(daemon: Any, app: Any, spawn: Any) -> None:
    watchdogs(daemon).before_spawn(app, spawn)


@corral.hookimpl
def corral_notify(daemon: Any, pid: int, fields: dict[str, str]) -> None:
    watchdogs(daemon).notify(pid, fields)


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    if event.event in ("exit", "stop", "delete", "errored"):
        watchdogs(daemon).prune()


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    """Children this daemon adopted (``corral update``) are watched from now on."""
    dogs = watchdogs(daemon)
    for app in daemon.processes():
        timeout_ms = app.options.get("watchdog") or 0
        if timeout_ms and app.pid is not None and app.state in _RUNNING:
            dogs.arm(Timer(app, app.pid, timeout_ms / 1000))


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    watchdogs(daemon).stop()
    daemon.forget_state(STATE_KEY)


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"watchdog": lambda daemon: watchdogs(daemon).stats()}
