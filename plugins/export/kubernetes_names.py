"""The Kubernetes exporter's names: each app's DNS-1035 name, its labels and metadata."""

from __future__ import annotations

import re
from typing import Any

from corral import ConfigError

from .kubernetes_settings import Settings

MANAGED_BY = "corral"
NAME_LABEL = "app.kubernetes.io/name"
# a CronJob's name is at most 52 characters (its Jobs add 11); every kind gets the
# same cap so that an app has one name whatever it becomes
MAX_NAME = 52

_NOT_IN_NAME = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")


def kubernetes_name(app_name: str) -> str:
    """A DNS-1035 label made from ``app_name``: lowercase, other characters to '-',
    ``app-`` before a leading digit (a Service name starts with a letter), at most
    MAX_NAME characters. ConfigError when nothing is left."""
    name = _DASHES.sub("-", _NOT_IN_NAME.sub("-", app_name.lower())).strip("-")
    if name and not name[0].isalpha():
        name = f"app-{name}"
    name = name[:MAX_NAME].rstrip("-")
    if not name:
        raise ConfigError(
            f"app {app_name!r}: its name has no letter or digit to make a Kubernetes "
            "name of: rename it (a-z, 0-9, '-')"
        )
    return name


def kubernetes_names(config: Any) -> list[str]:
    """Each app's Kubernetes name, in order; ConfigError when two apps make the same."""
    names: list[str] = []
    taken: dict[str, str] = {}
    for app in config.apps:
        if "," in app.name:  # corral runtime --only reads a comma-separated list
            raise ConfigError(
                f"{config.path}: app {app.name!r}: a ',' in the name cannot be given to "
                "corral runtime --only: rename it"
            )
        if app.name != app.name.strip():  # and corral runtime strips each name of --only
            raise ConfigError(
                f"{config.path}: app {app.name!r}: blanks at the start or end of the name are "
                "dropped by corral runtime --only, which would find no app: rename it"
            )
        name = kubernetes_name(app.name)
        if name in taken:
            raise ConfigError(
                f"{config.path}: apps {taken[name]!r} and {app.name!r} both make the "
                f"Kubernetes name {name!r}: rename one"
            )
        taken[name] = app.name
        names.append(name)
    return names


def labels_of(app: Any, name: str, notes: list[str]) -> dict[str, str]:
    labels = {NAME_LABEL: name, "app.kubernetes.io/managed-by": MANAGED_BY}
    group = str(app.options.get("namespace") or "default")
    if group != "default":  # corral's namespace groups apps, as part-of does
        part_of = _DASHES.sub("-", _NOT_IN_NAME.sub("-", group.lower())).strip("-")[:63]
        if part_of:
            labels["app.kubernetes.io/part-of"] = part_of.rstrip("-")
        else:
            notes.append(f"namespace {group!r} makes no label value: not exported")
    return labels


def metadata(name: str, labels: dict[str, str], settings: Settings) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if settings.namespace:
        meta["namespace"] = settings.namespace
    meta["labels"] = dict(labels)
    return meta
