"""The Kubernetes exporter's warnings: the options it cannot carry."""

from __future__ import annotations

from typing import Any


def warn_unmapped(app: Any, notes: list[str]) -> None:
    """A note for each option set that has no Kubernetes equivalent."""
    options = app.options
    if options.get("watch"):
        notes.append(
            "watch has no Kubernetes equivalent (a pod's files come from its image): "
            "not exported; build and roll out a new image instead"
        )
    if options.get("depends_on"):
        notes.append(
            "depends_on has no Kubernetes equivalent (pods start in any order): not "
            "exported; wait for the dependency in the app or an init container"
        )
    if options.get("stop_exit_codes") and options.get("autorestart", True):
        notes.append(
            "stop_exit_codes has no Kubernetes equivalent (a Deployment restarts its "
            "pod whatever the exit code): not exported"
        )
    if options.get("increment_var") and isinstance(app.instances, int) and app.instances > 1:
        notes.append(
            f"increment_var {options['increment_var']!r}: every pod runs instance 0, "
            "so each gets the same value"
        )
