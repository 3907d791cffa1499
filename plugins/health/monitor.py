"""The daemon's side of the health checks: which child each check watches, what its
results mean (a readiness gate opened, a restart asked for), what ``pm2_env`` shows.

Everything here runs on the daemon's loop; the probes run on the health thread
(:mod:`corral.plugins.health.runner`), which hands each result over with
``call_soon_threadsafe``. A check belongs to one child (its pid): a restart or a
reload brings new checks with the new child; the old child's stop once its pid is
gone. Only the slot's current child is restarted for failing, and once.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import corral
from corral.api import app_account, pid_alive
from corral.plugins.health.config import bound_s, expand, kind_of, shown
from corral.plugins.health.runner import Probe, Runner

SHOWN_KEY = "health_status"  # pm2_env's key (the option itself is "health")
GATE_NAME = "health"
_RUNNING = (corral.ProcessState.ONLINE, corral.ProcessState.LAUNCHING)


@dataclass(eq=False)
class Watch:
    """One check of one child, as the daemon counts it."""

    probe: Probe
    pm_id: int
    gate: Any = None  # the readiness gate it opens (a spawn's, readiness role), or None
    successes: int = 0  # in a row
    failures: int = 0  # in a row
    status: str = "unknown"
    last: str = ""
    checked_at: int | None = None
    restarting: bool = False

    @property
    def check(self) -> dict[str, Any]:
        return self.probe.check

    @property
    def liveness(self) -> bool:
        return self.check["role"] in ("liveness", "both")

    @property
    def readiness(self) -> bool:
        return self.check["role"] in ("readiness", "both")


class HealthMonitor:
    """Each daemon's checks (kept in ``daemon.state``), from its start to its stop."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.runner = Runner(self._from_thread)
        self.watches: dict[int, list[Watch]] = {}  # pm_id -> checks of its children
        self._by_probe: dict[Probe, Watch] = {}  # each running probe's watch
        self._shown: dict[int, tuple[Any, dict[str, Any]]] = {}  # pm_id -> (app, shown dict)
        self.stopped = False

    # -- spawns ------------------------------------------------------------------

    def before_spawn(self, app: Any, spawn: Any) -> None:
        """The checks of the child about to be spawned: their readiness gate now, their
        probes once its pid is known."""
        checks = app.options.get("health")
        if not checks or self.stopped:
            return
        env, cwd = dict(spawn.env), spawn.cwd
        probes, problem = self._probes(checks, env)
        gates = [
            spawn.hold_ready(GATE_NAME, bound_s(c)) if c["role"] != "liveness" else None
            for c in checks
        ]
        spawn.when_spawned(lambda pid: self._begin(app, pid, probes, gates, problem, env, cwd))

    def adopt(self, app: Any) -> None:
        """Checks for a running child that no spawn of this daemon announced (the daemon
        was updated in place, or a reload was rolled back): liveness, no gate."""
        checks = app.options.get("health")
        pid = app.pid
        if not checks or pid is None or app.state not in _RUNNING or self._has(app.pm_id, pid):
            return
        env = app.child_env()  # what its spawn gave it (PORT, the instance variables)
        cwd = str(app.options.get("cwd") or self.daemon.home)
        probes, problem = self._probes(checks, env)
        self._begin(app, pid, probes, [None] * len(probes), problem, env, cwd)

    @staticmethod
    def _probes(
        checks: list[dict[str, Any]], env: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str]:
        """The checks with the child's variables filled in, and what is wrong, if any."""
        result, problem = [], ""
        for check in checks:
            kind = kind_of(check)
            try:
                result.append({**check, kind: expand(check[kind], env)})
            except KeyError as exc:
                problem = f"{shown(check)}: the app's environment has no variable {exc.args[0]}"
                result.append(check)
        return result, problem

    def _begin(
        self,
        app: Any,
        pid: int,
        checks: list[dict[str, Any]],
        gates: list[Any],
        problem: str,
        env: dict[str, str],
        cwd: str,
    ) -> None:
        self.prune(app.pm_id)
        if problem:  # nothing to probe: said, and the readiness it holds times out
            self.daemon.log.error("health check not started", name=app.name, error=problem)
            self._show(app, {"status": "unknown", "check": problem})
            return
        try:
            account = app_account(app.options)
        except corral.OptionError:
            account = None  # the spawn resolved it a moment ago: the user went since
        new = [
            Watch(Probe(check, pid, env, cwd, account), app.pm_id, gate)
            for check, gate in zip(checks, gates, strict=True)
        ]
        self.watches.setdefault(app.pm_id, []).extend(new)
        for watch in new:
            self._by_probe[watch.probe] = watch
            self.runner.start(watch.probe)
        self._show(app, self._summary(new))

    def _has(self, pm_id: int, pid: int) -> bool:
        return any(w.probe.pid == pid for w in self.watches.get(pm_id, ()))

    # -- results -----------------------------------------------------------------

    def _from_thread(self, results: list[tuple[Probe, bool, str]]) -> None:
        with contextlib.suppress(RuntimeError):  # the daemon's loop is closed: nobody to tell
            self.daemon.loop.call_soon_threadsafe(self._results, results)

    def _results(self, results: list[tuple[Probe, bool, str]]) -> None:
        for probe, ok, seen in results:
            self._result(probe, ok, seen)

    def _result(self, probe: Probe, ok: bool, seen: str) -> None:
        watch = self._by_probe.get(probe)
        if watch is None or self.stopped:
            return  # stopped meanwhile
        app = self.daemon.process(watch.pm_id)
        if app is None or app.pid != probe.pid:
            self.prune(watch.pm_id)  # a child replaced or gone: its checks end with it
            return  # a reload's old child, still serving: never restarted for the new one
        before = watch.status
        watch.checked_at, watch.last = int(time.time() * 1000), seen
        check = watch.check
        if ok:
            watch.successes, watch.failures = watch.successes + 1, 0
            if watch.successes >= check["success_threshold"]:
                watch.status = "healthy"
                if watch.gate is not None and watch.readiness:
                    watch.gate.open()
        else:
            watch.successes, watch.failures = 0, watch.failures + 1
            watch.status = "unhealthy"
        self._show(app, self._summary(self._current(app)))
        if watch.status != before:  # a result makes it healthy or unhealthy, never unknown
            reason = f"{shown(check)}: {seen}"
            self.daemon.emit(app, watch.status, reason=reason)
        if not ok and watch.liveness and watch.failures >= check["failure_threshold"]:
            self._restart(app, watch, seen)

    def _restart(self, app: Any, watch: Watch, seen: str) -> None:
        if watch.restarting or app.state is not corral.ProcessState.ONLINE:
            return
        watch.restarting = True
        check = watch.check
        reason = (
            f"health check failed {watch.failures} times in a row "
            f"(failure_threshold {check['failure_threshold']}): {shown(check)}: {seen}"
        )
        task = self.daemon.loop.create_task(self.daemon.fail_process(app, reason=reason))
        task.add_done_callback(lambda t: self._restarted(app, watch, t))

    def _restarted(self, app: Any, watch: Watch, task: Any) -> None:
        if task.cancelled() or task.exception() is None:
            return
        watch.restarting = False  # the next failure may try again
        self.daemon.log.error("health restart failed", name=app.name, error=f"{task.exception()!r}")

    # -- bookkeeping -------------------------------------------------------------

    def prune(self, pm_id: int) -> None:
        """Stop the checks of ``pm_id``'s children that are gone (all, once it is deleted)."""
        watches = self.watches.get(pm_id)
        if not watches:
            return
        app = self.daemon.process(pm_id)
        keep = []
        for watch in watches:
            pid = watch.probe.pid
            if app is not None and pid_alive(pid):
                keep.append(watch)
            else:
                self._by_probe.pop(watch.probe, None)
                self.runner.stop(watch.probe)
        if keep:
            self.watches[pm_id] = keep
        else:
            del self.watches[pm_id]
            if app is not None:
                self._show(app, None)
            self._shown.pop(pm_id, None)

    def _current(self, app: Any) -> list[Watch]:
        return [w for w in self.watches.get(app.pm_id, ()) if w.probe.pid == app.pid]

    def _summary(self, watches: list[Watch]) -> dict[str, Any] | None:
        """What pm2_env shows: the worst of the current child's checks."""
        if not watches:
            return None
        order = {"unhealthy": 0, "unknown": 1, "healthy": 2}
        worst = min(watches, key=lambda w: order[w.status])
        shown_fields: dict[str, Any] = {
            "status": worst.status,
            "failures": worst.failures,
            "threshold": worst.check["failure_threshold"],
            "check": shown(worst.check),
        }
        if worst.checked_at is not None:
            shown_fields.update(last=worst.last, checked_at=worst.checked_at)
        return shown_fields

    def _show(self, app: Any, value: dict[str, Any] | None) -> None:
        """Set what pm2_env shows; a summary shown already is updated in place (pm2_env
        encodes it at each read), so a probe's result costs no new field."""
        if self.daemon.process(app.pm_id) is not app:
            return
        shown_now = self._shown.get(app.pm_id)
        if value is not None and shown_now is not None and shown_now[0] is app:
            shown_now[1].clear()
            shown_now[1].update(value)
            return
        self.daemon.show(app, SHOWN_KEY, value)
        if value is None:
            self._shown.pop(app.pm_id, None)
        else:
            self._shown[app.pm_id] = (app, value)

    def stats(self) -> dict[str, Any]:
        """For the ``health`` RPC: each app's checks, as ``describe`` shows the worst."""
        return {
            str(pm_id): [
                {
                    "pid": w.probe.pid,
                    "check": shown(w.check),
                    "role": w.check["role"],
                    "status": w.status,
                    "successes": w.successes,
                    "failures": w.failures,
                    "last": w.last,
                    "checked_at": w.checked_at,
                }
                for w in watches
            ]
            for pm_id, watches in sorted(self.watches.items())
        }

    def stop(self) -> None:
        self.stopped = True
        for watches in self.watches.values():
            for watch in watches:
                self.runner.stop(watch.probe)
        self.watches.clear()
        self._by_probe.clear()
        self.runner.close()
