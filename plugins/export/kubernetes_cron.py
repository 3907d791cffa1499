"""The Kubernetes exporter's cron: a cron_restart as a CronJob schedule.

A CronJob's schedule is read by robfig/cron's standard parser: 5 fields, numbers,
``*``, ``?``, ranges, lists, steps, the month and day names (``JAN``, ``wed``), the
days 0-6 and the nicknames. croner's (and croniter's) ``L``, ``W`` and ``#`` have no
equivalent there; its day 7 (Sunday) is written 0.
"""

from __future__ import annotations

import re
from typing import Any

CRON_NICKNAMES = frozenset(
    ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
)
_NAMES = re.compile(
    r"jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|sun|mon|tue|wed|thu|fri|sat", re.I
)
_NUMBERS = re.compile(r"^(\d+)(?:-(\d+))?(?:/(\d+))?$")
# what each of croner's special forms means, for the warning
_SPECIAL = (
    ("#", "# (the nth weekday of the month)"),
    ("W", "W (the weekday nearest a day)"),
    ("L", "L (the last day, or weekday, of the month)"),
)


def cron_of(options: dict[str, Any]) -> str | None:
    """The app's cron_restart, or None (``0`` and ``""`` disable it, as in PM2)."""
    cron = options.get("cron_restart")
    if cron is None or str(cron).strip() in ("", "0"):
        return None
    return str(cron).strip()


def schedule_of(cron: str) -> tuple[str | None, str]:
    """A CronJob schedule for ``cron``, or None and why not: Kubernetes has no seconds
    field (a leading ``0`` is dropped) and none of croner's L, W, #."""
    if cron.startswith("@"):
        if cron.lower() in CRON_NICKNAMES:
            return cron.lower(), ""
        return None, "a nickname Kubernetes does not know"
    fields = cron.split()
    if len(fields) == 6 and fields[0] in ("0", "00"):
        fields = fields[1:]
    if len(fields) != 5:
        return None, "a seconds field other than 0"
    for field in fields:
        special = _special(field)
        if special:
            return None, special
    fields[4] = _sunday_as_zero(fields[4])
    return " ".join(fields), ""


def cron_schedule(cron: str) -> str | None:
    """A CronJob schedule for ``cron``, or None (:func:`schedule_of` says why)."""
    return schedule_of(cron)[0]


def _special(field: str) -> str:
    """croner's L, W or # in a field (a month or day name is not one), described; or ""."""
    bare = _NAMES.sub("", field).upper()
    for mark, meaning in _SPECIAL:
        if mark in bare:
            return meaning
    return ""


def _sunday_as_zero(field: str) -> str:
    """The day-of-week field with croner's 7 (Sunday) as 0, which robfig/cron takes:
    ``7`` is ``0``, a range or step reaching 7 is written as its days."""
    items = []
    for item in field.split(","):
        match = _NUMBERS.match(item)
        if match is None or "7" not in (match[1], match[2]):
            items.append(item)
            continue
        first = int(match[1])
        last = int(match[2]) if match[2] else (7 if match[3] else first)
        step = int(match[3] or 1)
        items.append(",".join(str(day % 7) for day in range(first, last + 1, step)))
    return ",".join(items)
