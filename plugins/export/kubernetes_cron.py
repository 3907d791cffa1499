"""The Kubernetes exporter's cron: a cron_restart as a CronJob schedule."""

from __future__ import annotations

from typing import Any

CRON_NICKNAMES = frozenset(
    ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
)


def cron_of(options: dict[str, Any]) -> str | None:
    """The app's cron_restart, or None (``0`` and ``""`` disable it, as in PM2)."""
    cron = options.get("cron_restart")
    if cron is None or str(cron).strip() in ("", "0"):
        return None
    return str(cron).strip()


def cron_schedule(cron: str) -> str | None:
    """A CronJob schedule for ``cron``, or None: Kubernetes has no seconds field
    (a leading ``0`` is dropped) and none of croner's L, W, #."""
    if cron.startswith("@"):
        return cron.lower() if cron.lower() in CRON_NICKNAMES else None
    fields = cron.split()
    if len(fields) == 6 and fields[0] in ("0", "00"):
        fields = fields[1:]
    if len(fields) != 5 or any(c in cron.upper() for c in "LW#"):
        return None
    return " ".join(fields)
