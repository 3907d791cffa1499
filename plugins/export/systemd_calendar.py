"""The cron -> OnCalendar conversion of the systemd exporter: a cron_restart as timer values.

croner's 5 fields, or 6 with the seconds first, or a nickname, read by croniter,
then written as systemd's calendar events (``Mon..Fri *-*-* 03:00:00``).
"""

from __future__ import annotations

import re
from typing import Any

from corral import OptionError

_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
# an IANA zone name as systemd's timezone_is_valid() takes it: no "." nor "..", no "//"
_ZONE = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")


def cron_expression(options: dict[str, Any]) -> str | None:
    expr = str(options.get("cron_restart") or "").strip()
    return None if expr in ("", "0") else expr


def _field(values: list[Any], days: bool = False) -> str:
    """One croniter field as a calendar component: ``*``, or a list with ranges ``a..b``."""
    if values == ["*"]:
        return "*"
    numbers = sorted({int(v) % 7 if days else int(v) for v in values})
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    shown = []
    for start, end in runs:
        first, last = (_DAYS[start], _DAYS[end]) if days else (f"{start:02d}", f"{end:02d}")
        shown.append(first if start == end else f"{first}..{last}")
    return ",".join(shown)


def on_calendar(expr: str, tz: str | None) -> list[str]:
    """``OnCalendar=`` values for a cron expression (croner's 5 fields, or 6 with the
    seconds first, or a nickname). cron fires when the day of month *or* the day of
    week matches if both are given: two values, as systemd ANDs them in one; the last
    day of the month (``L``) is a value of its own (``*-*~01``) beside the other days.
    OptionError naming cron_restart (or cron_tz) for what no calendar holds."""
    # deferred: croniter, corral's dependency, is needed only for an app with a cron
    from croniter import CroniterError, croniter

    fields = expr.split()
    try:
        parsed = croniter(expr, second_at_beginning=len(fields) == 6)
    except (CroniterError, ValueError, LookupError, TypeError) as exc:
        # the cron plugin refuses these as the file is read: an API caller, or croner's
        # own syntax (5L) croniter does not read
        raise OptionError(
            f"cron_restart {expr!r} is not a valid cron expression: {exc}", field="cron_restart"
        ) from None
    if getattr(parsed, "nth_weekday_of_month", None):
        raise OptionError(
            f"cron_restart {expr!r}: a weekday of the month (5#2, L5) has no systemd "
            "calendar equivalent: use days of the month",
            field="cron_restart",
        )
    if getattr(parsed, "nearest_weekday", None):
        raise OptionError(
            f"cron_restart {expr!r}: the weekday nearest a day (W) has no systemd calendar "
            "equivalent: use days of the month",
            field="cron_restart",
        )
    zone = f" {checked_zone(tz)}" if tz else ""
    expanded = parsed.expanded
    if len(expanded) == 5:
        expanded = [*expanded, [0]]
    minute, hour, dom, month, dow, second = expanded
    clock = f"{_field(hour)}:{_field(minute)}:{_field(second)}"
    every_day = f"*-{_field(month)}-*"
    dates = []
    if dom == ["*"]:
        dates.append(every_day)
    else:
        days = [v for v in dom if str(v).lower() != "l"]
        if days:
            dates.append(f"*-{_field(month)}-{_field(days)}")
        if len(days) < len(dom):
            dates.append(f"*-{_field(month)}~01")  # the last day of the month
    if dow == ["*"]:
        return [f"{date} {clock}{zone}" for date in dates]
    weekdays = _field(dow, days=True)
    if dom == ["*"]:
        return [f"{weekdays} {every_day} {clock}{zone}"]
    return [f"{date} {clock}{zone}" for date in dates] + [f"{weekdays} {every_day} {clock}{zone}"]


def checked_zone(tz: str) -> str:
    """``cron_tz`` as ``OnCalendar=`` takes it: an IANA zone name (letters, digits,
    ``_ + -``, parts joined by ``/``) that this machine's zone database knows, or
    OptionError: a value written as it is must not break the unit's line."""
    # deferred: only an app with cron_tz needs the zone database
    from zoneinfo import ZoneInfo, available_timezones

    name = str(tz)
    if not _ZONE.match(name):
        raise OptionError(
            f"cron_tz {name!r} is not an IANA time zone name (Europe/Paris, UTC): a "
            "timer cannot hold it: fix the option cron_tz",
            field="cron_tz",
        )
    known = available_timezones()
    if known and name not in known:
        try:
            ZoneInfo(name)
        except (ValueError, OSError, LookupError):
            raise OptionError(
                f"cron_tz {name!r} is not an IANA time zone (Europe/Paris, UTC) this "
                "machine knows: fix the option cron_tz",
                field="cron_tz",
            ) from None
    return name
