"""Cron restarts: restart an app at each tick of a cron expression, as PM2's ``cron_restart``.

Options:

- ``cron_restart`` (alias ``cron``): a cron expression, 5 fields (minute hour
  day-of-month month day-of-week) or 6 with the seconds first, as PM2's croner
  reads them (``*/2 * * * * *`` is every 2 s); ``@hourly`` and the other
  nicknames work too. ``0`` (or an empty string) disables it. A bad expression
  is refused at start, naming the field that is wrong.
- ``cron_tz``: the IANA time zone the expression is read in (``Europe/Paris``);
  default: the daemon's local time.

PM2's behaviour: one job per pm_id, armed when the app starts and kept across
``stop``; ``delete`` removes it, a restart with ``cron_restart: 0`` too. Each tick
restarts the app gracefully, or starts it when it is stopped, so an app with
``autorestart: false`` runs as a scheduled job. A tick is skipped while the
previous tick's restart is still going on.

Ticks follow the wall clock: the next one is always computed from now, and the
timer is re-armed from the wall clock at least every ``MAX_SLEEP`` seconds, so
a daemon that was asleep (a suspended laptop) fires once when it wakes, logs
how many ticks it skipped, and goes on with the next tick.

The RPC command ``cron_jobs`` and the CLI command ``corral cron`` list the
jobs and their next tick.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

import corral

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

FIELD_NAMES = {
    5: ("minute", "hour", "day-of-month", "month", "day-of-week"),
    6: ("second", "minute", "hour", "day-of-month", "month", "day-of-week"),
}
FORMS = (
    "write 5 fields (minute hour day-of-month month day-of-week) "
    "or 6 with the seconds first (*/2 * * * * * is every 2 s)"
)
MAX_SLEEP = 30.0  # seconds: the loop's clock stops during a suspend, the wall clock does not
MISSED_LIMIT = 1000  # missed ticks counted after a sleep, at most (the count is only logged)
FAILED_EVENT = "cron failed"  # the event a process gets when its expression cannot be scheduled
STATE_KEY = "cron.scheduler"  # where each daemon keeps its Scheduler (DaemonAPI.state)


# -- expressions and time zones -----------------------------------------------


def is_disabled(expr: str | None) -> bool:
    """PM2's rule: no expression, or ``0``, means no cron job."""
    return not expr or expr.strip() == "0"


def _croniter(expr: str, start: datetime) -> croniter:
    return croniter(expr, start, second_at_beginning=len(expr.split()) == 6)


def _culprit(expr: str) -> str:
    """Which field croniter refuses, tried one at a time with ``*`` in the others."""
    parts = expr.split()
    names = FIELD_NAMES.get(len(parts))
    if names is None:
        return ""
    for i, part in enumerate(parts):
        probe = ["*"] * len(parts)
        probe[i] = part
        try:
            _croniter(" ".join(probe), datetime.now())
        except (ValueError, LookupError, TypeError):
            return f"{names[i]} field {part!r}"
    return ""


def check_cron(value: str) -> str:
    """The ``cron_restart`` validator: the expression, stripped, or ValueError saying why.

    ``0`` and the empty string pass (they disable the job).
    """
    expr = value.strip()
    if is_disabled(expr):
        return expr
    count = len(expr.split())
    if count not in FIELD_NAMES and not expr.startswith("@"):
        # croniter also takes a 7th field (the year, after the seconds): croner does not
        raise ValueError(f"{expr!r} has {count} field{'s' * (count != 1)}; {FORMS}")
    try:
        _croniter(expr, datetime.now()).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"{expr!r} never fires: no date matches it") from None
    except (ValueError, LookupError, TypeError) as exc:
        culprit = _culprit(expr)
        hint = f"the {culprit} is wrong: {exc}" if culprit else f"{exc}; {FORMS}"
        raise ValueError(f"{expr!r} is not a valid cron expression: {hint}") from None
    return expr


def zone(name: str | None) -> tzinfo | None:
    """The time zone named ``name``, or None (the daemon's local time) when empty."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from None


def check_tz(value: str) -> str:
    """The ``cron_tz`` validator: the zone name, stripped, or ValueError."""
    name = value.strip()
    zone(name)
    return name


# -- the schedule, as pure functions of the wall clock ---------------------------


def next_tick(expr: str, tz: tzinfo | None, after: float) -> float:
    """The first tick strictly after ``after`` (epoch seconds), as epoch seconds.

    Without ``tz`` the expression is read in local time (a naive datetime).
    """
    ticks = _croniter(expr, datetime.fromtimestamp(after, tz))
    tick = ticks.get_next(datetime).timestamp()
    for _ in range(4):  # a local time repeated by a DST change can read as the past
        if tick > after:
            break
        tick = ticks.get_next(datetime).timestamp()
    return tick


def next_delay(expr: str, tz: tzinfo | None, now: float) -> float:
    """Seconds from ``now`` to the next tick."""
    return next_tick(expr, tz, now) - now


def missed_ticks(
    expr: str, tz: tzinfo | None, due: float, now: float, limit: int = MISSED_LIMIT
) -> int:
    """Ticks after ``due`` and up to ``now``: those a late wakeup skips (at most ``limit``)."""
    count, tick = 0, due
    while count < limit:
        tick = next_tick(expr, tz, tick)
        if tick > now:
            break
        count += 1
    return count


@dataclass(frozen=True)
class Wakeup:
    """What a timer that went off at ``now`` does for a tick due at ``due``."""

    fire: bool  # restart now (once, however late)
    missed: int  # ticks skipped since ``due`` (a suspend or a clock jump)
    next_due: float  # the tick to wait for next


def plan_wakeup(expr: str, tz: tzinfo | None, due: float, now: float) -> Wakeup:
    """Fire once when the tick is due, then aim at the next tick after now, never a backlog."""
    if now < due:
        return Wakeup(False, 0, due)  # a capped sleep ended early: keep waiting
    return Wakeup(True, missed_ticks(expr, tz, due, now), next_tick(expr, tz, now))


# -- the jobs -------------------------------------------------------------------


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


# -- hooks ------------------------------------------------------------------------


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "cron_restart",
            "str",
            aliases=("cron",),
            help="restart at each tick of this cron expression (5 fields, or 6 with the "
            "seconds first); also starts a stopped app; 0 disables",
            validate=check_cron,
        ),
        corral.Option(
            "cron_tz",
            "str",
            help="IANA time zone of cron_restart, e.g. Europe/Paris (default: local time)",
            validate=check_tz,
        ),
    ]


def scheduler(daemon: Any) -> Scheduler:
    """The :class:`Scheduler` of ``daemon`` (a ``corral.api.DaemonAPI``), made on first use:
    two daemons in one process each have their own."""
    return daemon.state(STATE_KEY, lambda: Scheduler(daemon))


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    if scheduler(daemon).closed:  # the same daemon started again: a fresh schedule
        daemon.forget_state(STATE_KEY)
    scheduler(daemon).start()


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    scheduler(daemon).close()  # kept, closed: a late event schedules nothing


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    jobs = scheduler(daemon)
    if not jobs.running or event.event == FAILED_EVENT:
        return
    if event.event == "delete":
        jobs.drop(event.pm_id)
        return
    proc = daemon.process(event.pm_id)
    if proc is not None:
        jobs.sync(proc)  # options may have changed (restart with cron_restart: 0)


@corral.hookimpl
def corral_process_added(daemon: Any, app: Any) -> None:
    scheduler(daemon).sync(app)  # PM2 arms the job before it looks at autostart


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"cron_jobs": cron_jobs}


def cron_jobs(daemon: Any) -> list[dict[str, Any]]:
    """The cron jobs of this daemon and their next tick."""
    return scheduler(daemon).describe()


@corral.hookimpl
def corral_cli(group: Any) -> None:
    import click  # deferred: click loads in the CLI only, never in the daemon

    @click.command("cron")
    def cron_command() -> None:
        """List the cron jobs (cron_restart) and their next tick."""
        client = corral.connect()
        try:
            jobs = client.call("cron_jobs")
        finally:
            client.disconnect()
        if not jobs:
            click.echo("no cron jobs")
            return
        for job in jobs:
            when = job["error"] or time.strftime(
                "%Y-%m-%d %H:%M:%S", time.localtime(job["next"] / 1000)
            )
            zone_name = f" ({job['tz']})" if job["tz"] else ""
            click.echo(f"{job['pm_id']:>3} {job['name']}  {job['cron']}{zone_name}  next: {when}")

    group.add_command(cron_command)
