"""The ``export`` plugin: ``corral export TARGET CONFIG``, the same app file for
another engine.

Each TARGET is an exporter another plugin returns from ``corral_exporters``
(``export_kubernetes``: :mod:`.kubernetes`, ``export_systemd``: :mod:`.systemd`,
each its own entry point; a third party's ``export_nomad`` is one
``pip install`` away). This plugin reads the file for another machine
(``corral.api.read_portable``: validated by the installed plugins' options,
nothing of this machine checked or mixed in), asks the exporter to render it,
and writes the files to ``-o DIR`` (``-``, the default: to stdout) or prints
them. The exporter's warnings, one per option it could not map, go to stderr.
Everything runs in the client process; no daemon is started.

Without this plugin (``CORRAL_PLUGINS=``) there is no ``corral export``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import corral

from .write import export, exporters, write_files


@dataclass(frozen=True)
class ExportRequest:
    """What an exporter renders: the file, the env and its own params' values."""

    config: Any  # corral.api.read_portable's ConfigFile: .path, .apps, .deploy
    env_name: str | None  # --env NAME, PM2's env_<name>, already applied to each app's env
    params: dict[str, Any] = field(default_factory=dict)  # the exporter's click params


@dataclass(frozen=True)
class ExportResult:
    """What an exporter made: ``files`` by relative name, in order, and ``warnings``,
    one line each (``"web: watch has no Kubernetes equivalent: not exported"``)."""

    files: dict[str, str]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Exporter:
    """One ``corral export`` target (the ``corral_exporters`` hook returns these)."""

    name: str
    help: str
    render: Callable[[ExportRequest], ExportResult]
    params: list[Any] = field(default_factory=list)  # click.Option / click.Argument
    stdout_separator: str = ""  # between two files printed to stdout ("---\n" for YAML)


__all__ = ["ExportRequest", "ExportResult", "Exporter", "export", "exporters", "write_files"]


@corral.hookimpl
def corral_cli(group: Any) -> None:
    from .cli import export_group  # deferred: click loads in the CLI only

    group.add_command(export_group())
