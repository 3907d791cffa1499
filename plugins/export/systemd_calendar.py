"""The cron -> OnCalendar conversion of the systemd exporter: a cron_restart as timer values.

croner's 5 fields, or 6 with the seconds first, or a nickname, read by croniter,
then written as systemd's calendar events (``Mon..Fri *-*-* 03:00:00``).
"""

from __future__ import annotations

from typing import Any

from corral import OptionError

_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


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
    week matches if both are given: two values, as systemd ANDs them in one."""
    # deferred: croniter, corral's dependency, is needed only for an app with a cron
    from croniter import croniter

    fields = expr.split()
    parsed = croniter(expr, second_at_beginning=len(fields) == 6)
    if getattr(parsed, "nth_weekday_of_month", None):
        raise OptionError(
            f"cron_restart {expr!r}: a weekday of the month (#) has no systemd calendar "
            "equivalent: use days of the month",
            field="cron_restart",
        )
    expanded = parsed.expanded
    if len(expanded) == 5:
        expanded = [*expanded, [0]]
    minute, hour, dom, month, dow, second = expanded
    if dom != ["*"] and "l" in [str(v).lower() for v in dom]:
        day = "~01"  # the last day of the month
        date = f"*-{_field(month)}{day}"
    else:
        date = f"*-{_field(month)}-{_field(dom)}"
    clock = f"{_field(hour)}:{_field(minute)}:{_field(second)}"
    zone = f" {tz}" if tz else ""
    if dow == ["*"]:
        return [f"{date} {clock}{zone}"]
    weekdays = _field(dow, days=True)
    if dom == ["*"]:
        return [f"{weekdays} {date} {clock}{zone}"]
    every_day = f"*-{_field(month)}-*"
    return [f"{date} {clock}{zone}", f"{weekdays} {every_day} {clock}{zone}"]
