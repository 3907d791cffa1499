"""cron's schedule: expressions checked, time zones, ticks as pure functions of the wall clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

FIELD_NAMES = {
    5: ("minute", "hour", "day-of-month", "month", "day-of-week"),
    6: ("second", "minute", "hour", "day-of-month", "month", "day-of-week"),
}
FORMS = (
    "write 5 fields (minute hour day-of-month month day-of-week) "
    "or 6 with the seconds first (*/2 * * * * * is every 2 s)"
)
MISSED_LIMIT = 1000  # missed ticks counted after a sleep, at most (the count is only logged)


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
