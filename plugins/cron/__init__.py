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

Modules: :mod:`.schedule` (expressions, time zones, ticks), :mod:`.timers` (the
per-daemon jobs), :mod:`.cli`.
"""

from __future__ import annotations

from typing import Any

import corral

from .cli import corral_cli
from .schedule import (
    MISSED_LIMIT,
    Wakeup,
    check_cron,
    check_tz,
    is_disabled,
    missed_ticks,
    next_delay,
    next_tick,
    plan_wakeup,
    zone,
)
from .timers import FAILED_EVENT, MAX_SLEEP, Job, Scheduler

__all__ = [
    "FAILED_EVENT",
    "MAX_SLEEP",
    "MISSED_LIMIT",
    "Job",
    "Scheduler",
    "Wakeup",
    "check_cron",
    "check_tz",
    "corral_cli",
    "cron_jobs",
    "is_disabled",
    "missed_ticks",
    "next_delay",
    "next_tick",
    "plan_wakeup",
    "scheduler",
    "zone",
]

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

STATE_KEY = "cron.scheduler"  # where each daemon keeps its Scheduler (DaemonAPI.state)


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
