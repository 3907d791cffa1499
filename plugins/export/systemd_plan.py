"""The systemd exporter's unit names and plan: which units each app of the file gets."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral import ConfigError, OptionError

from .systemd_calendar import cron_expression
from .systemd_listen import listen_stream

UNIT_NAME_MAX = 255 - len(".service") - 8  # systemd's limit, with room for "-<n>"/"-cron"


# -- names -----------------------------------------------------------------------


def unit_base(name: str, prefix: str = "") -> str:
    """The unit name an app gets: each run of characters other than letters, digits,
    ``_``, ``.`` and ``-`` becomes one ``-`` (``my app/v2`` -> ``my-app-v2``)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix + name).strip("-._")
    if not base:
        raise OptionError(
            f"app name {name!r} has no letter or digit to name a unit after: set the option name",
            field="name",
        )
    if len(base) > UNIT_NAME_MAX:
        raise OptionError(
            f"app name {name[:40]!r}... is longer than a unit name can be "
            f"({UNIT_NAME_MAX} characters): shorten the option name",
            field="name",
        )
    return base


def group_name(path: Path, prefix: str = "") -> str:
    """The target grouping every app of the file: ``corral-<file name up to its first .>``."""
    return unit_base("corral-" + path.name.split(".")[0], prefix)


# -- the plan: which units each app gets ------------------------------------------


@dataclass
class AppUnits:
    """One app of the file and the units it becomes."""

    app: Any  # a PortableApp
    base: str
    count: int
    services: list[str] = field(default_factory=list)
    group: str | None = None  # <base>.target when there are several instances
    cron: str | None = None  # <base>-cron, its .timer and .service
    socket: str | None = None  # <base>.socket, for the listen option
    oneshot: bool = False  # another app waits for it to complete

    @property
    def handle(self) -> str:
        """The unit another app depends on: the group of instances, or the one service."""
        return self.group or self.services[0]


def instance_count(app: Any, cpus: int | None, warnings: list[str]) -> int:
    """PM2's rule (0 or "max": one per CPU; -n: CPUs - n; at least 1), with the target's
    CPU count from ``--cpus``, else this machine's, said in a warning."""
    value = app.instances
    count = 0 if value == "max" else int(value)
    if count > 0:
        return count
    if cpus is None:
        cpus = os.cpu_count() or 1
        shown = "max" if count == 0 else count  # read_portable gives max as 0, as PM2 does
        warnings.append(
            f"{app.name}: instances {shown} is per CPU of the target: exported {cpus} "
            "for this machine's CPUs; give --cpus N for the target's"
        )
    return max(cpus + count if count < 0 else cpus, 1)


def plan(apps: list[Any], params: dict[str, Any], warnings: list[str]) -> list[AppUnits]:
    """Each app's unit names; two units of one name are refused, naming both apps."""
    prefix = params.get("prefix") or ""
    plans = []
    for app in apps:
        base = unit_base(app.name, prefix)
        if base != prefix + app.name:
            warnings.append(f"{app.name}: unit names are {base}: a unit name cannot hold it")
        units = AppUnits(app, base, instance_count(app, params.get("cpus"), warnings))
        if units.count == 1:
            units.services = [f"{base}.service"]
        else:
            units.services = [f"{base}-{i}.service" for i in range(units.count)]
            units.group = f"{base}.target"
        if cron_expression(app.options):
            units.cron = f"{base}-cron"
        try:
            if listen_stream(app.options):
                units.socket = f"{base}.socket"
        except OptionError as exc:  # one line naming the app and its option
            raise OptionError(f"{app.name}: {exc}", field=exc.field) from None
        plans.append(units)
    return plans


def refuse_collisions(plans: list[AppUnits], top: str) -> None:
    """ConfigError when two apps, or an app and the file's target, make one unit."""
    owners: dict[str, int] = {}
    for index, units in enumerate(plans):
        names = list(units.services)
        if units.group:
            names.append(units.group)
        if units.cron:
            names += [f"{units.cron}.service", f"{units.cron}.timer"]
        if units.socket:
            names.append(units.socket)
        for name in names:
            if name == top:
                raise ConfigError(
                    f"app {units.app.name!r} would make the unit {name}, the target of the "
                    "whole file: rename the app (the option name), or use --prefix"
                )
            other = owners.setdefault(name, index)
            if other != index:
                raise ConfigError(
                    f"apps {plans[other].app.name!r} and {units.app.name!r} would both make "
                    f"the unit {name}: rename one (the option name)"
                )


def depends_on(app: Any) -> dict[str, str]:
    """The app's ``depends_on``: each app it names, with its condition (``started``...)."""
    value = app.options.get("depends_on") or {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return dict.fromkeys((str(v) for v in value), "started")
    return {str(k): str(v) for k, v in value.items()}
