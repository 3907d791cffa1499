"""cron's jobs: one asyncio timer per pm_id, re-armed from the wall clock, that restarts it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from .schedule import check_cron, is_disabled, next_tick, plan_wakeup, zone

MAX_SLEEP = 30.0  # seconds: the loop's clock stops during a suspend, the wall clock does not
FAILED_EVENT = "cron failed"  # the event a process gets when its expression cannot be scheduled


@dataclass
class Job:
    """The cron job of one pm_id."""

    pm_id: int
    expr: str
    tz_name: str
    tz: tzinfo | None = None
    due: float = 0.0  # epoch seconds of the next tick
    timer: asyncio.TimerHandle | None = None
    restarting: asyncio.Task | None = None
    error: str = ""  # the expression could not be scheduled (reported once)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Scheduler:
    """Every cron job of one daemon, each an asyncio timer on its loop. Used on the loop only.

    Each daemon has its own (:func:`scheduler`): it schedules nothing before
    :meth:`start` nor after :meth:`close`.
    """

    def __init__(self, daemon: Any, clock: Any = time.time) -> None:
        self.daemon = daemon
        self.clock = clock  # the wall clock; ticks are computed from it, never from the loop's
        self.jobs: dict[int, Job] = {}
        self.running = False
        self.closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.daemon.loop

    def start(self) -> None:
        self.running = True
        self.sync_all()

    def sync_all(self) -> None:
        for proc in self.daemon.processes():
            self.sync(proc)

    def sync(self, proc: Any) -> None:
        """Arm, re-arm or drop the job of ``proc`` after its options."""
        if not self.running:
            return
        expr = str(proc.options.get("cron_restart") or "").strip()
        tz_name = str(proc.options.get("cron_tz") or "").strip()
        job = self.jobs.get(proc.pm_id)
        if is_disabled(expr):
            self.drop(proc.pm_id)
            return
        if job is not None and (job.expr, job.tz_name) == (expr, tz_name):
            return
        self.drop(proc.pm_id)
        job = self.jobs[proc.pm_id] = Job(proc.pm_id, expr, tz_name)
        try:
            check_cron(expr)
            job.tz = zone(tz_name)
            job.due = next_tick(expr, job.tz, self.clock())
        except ValueError as exc:
            job.error = f"cron_restart: {exc}"
            self.daemon.log.error(
                "cron job refused", name=proc.name, pm_id=proc.pm_id, error=job.error
            )
            self.daemon.emit(proc, FAILED_EVENT, reason=job.error)
            return
        self.daemon.log.info(
            "cron job armed",
            name=proc.name,
            pm_id=proc.pm_id,
            cron=expr,
            tz=tz_name or "local",
            next=_iso(job.due, job.tz),
        )
        self._arm(job)

    def drop(self, pm_id: int) -> None:
        job = self.jobs.pop(pm_id, None)
        if job is not None:
            job.cancel()

    def close(self) -> None:
        self.running, self.closed = False, True
        for job in self.jobs.values():
            job.cancel()
            if job.restarting is not None:
                job.restarting.cancel()
        self.jobs.clear()

    def _arm(self, job: Job) -> None:
        # short sleeps: after a suspend the loop's monotonic timers are late, the wall clock is not
        delay = min(max(job.due - self.clock(), 0.0), MAX_SLEEP)
        job.timer = self.loop.call_later(delay, self._wake, job)

    def _wake(self, job: Job) -> None:
        if self.jobs.get(job.pm_id) is not job:
            return
        job.timer = None
        now = self.clock()
        wakeup = plan_wakeup(job.expr, job.tz, job.due, now)
        if wakeup.fire:
            if wakeup.missed:
                self.daemon.log.warning(
                    "cron skipped missed ticks",
                    pm_id=job.pm_id,
                    cron=job.expr,
                    missed=wakeup.missed,
                    late_s=round(now - job.due, 3),
                )
            self._fire(job)
        job.due = wakeup.next_due
        self._arm(job)

    def _fire(self, job: Job) -> None:
        proc = self.daemon.process(job.pm_id)
        if proc is None:
            return
        if job.restarting is not None and not job.restarting.done():
            self.daemon.log.warning(
                "cron tick skipped: the previous restart is still running",
                name=proc.name,
                pm_id=job.pm_id,
                cron=job.expr,
            )
            return
        job.restarting = self.loop.create_task(self._restart(proc, job.expr))

    async def _restart(self, proc: Any, expr: str) -> None:
        try:
            await self.daemon.restart_process(proc, reason=f"cron {expr}")
        except Exception as exc:
            self.daemon.log.error(
                "cron restart failed", name=proc.name, pm_id=proc.pm_id, error=str(exc)
            )

    def describe(self) -> list[dict[str, Any]]:
        """Every job: ``{pm_id, name, cron, tz, next, error}``, ``next`` in epoch ms."""
        names = {p.pm_id: p.name for p in self.daemon.processes()}
        return [
            {
                "pm_id": job.pm_id,
                "name": names.get(job.pm_id),
                "cron": job.expr,
                "tz": job.tz_name or None,
                "next": None if job.error else int(job.due * 1000),
                "error": job.error or None,
            }
            for job in sorted(self.jobs.values(), key=lambda j: j.pm_id)
        ]


def _iso(at: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(at, tz).astimezone(tz).isoformat(timespec="seconds")
