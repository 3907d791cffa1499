"""``corral export systemd CONFIG``: one systemd service per app instance.

As ``honcho export systemd`` does: an app of one instance is ``<name>.service``;
an app of n instances is ``<name>-0.service`` .. ``<name>-<n-1>.service`` (the
number is the instance's ``NODE_APP_INSTANCE``) grouped by ``<name>.target``;
``corral-<file>.target`` wants every app (``systemctl enable --now`` it). A
``cron_restart`` is a ``<name>-cron.timer`` starting ``<name>-cron.service``,
which runs ``systemctl restart`` on the app's units. The option by option
mapping, and why, is in docs/plugins/export-systemd.md; every option set
that has no systemd equivalent is said in a warning naming the app.

The parts, a module each: how the command line is resolved (paths from
``--app-root``): systemd_command; values quoted as systemd reads them back:
systemd_quoting; cron_restart as OnCalendar=: systemd_calendar; unit names and
the plan: systemd_plan; the unit files: systemd_render.
"""

from __future__ import annotations

from typing import Any

import corral

from . import Exporter, ExportRequest, ExportResult
from .systemd_render import Renderer


def render(request: ExportRequest) -> ExportResult:
    """The units of ``request.config``'s apps, and a warning per option not mapped."""
    renderer = Renderer(request)
    files = renderer.files()
    return ExportResult(files=files, warnings=renderer.warnings)


def params() -> list[Any]:
    """The exporter's options: few, each for something the file cannot say."""
    import click  # deferred: click loads in the CLI only

    return [
        click.Option(
            ["--app-root"],
            metavar="DIR",
            help="Where `corral start` would run on the target: relative cwd, script and "
            "interpreter paths start from it (default: the config file's directory).",
        ),
        click.Option(["--user"], metavar="NAME", help="User= for apps that set no uid."),
        click.Option(["--prefix"], default="", metavar="TEXT", help="Prefix every unit name."),
        click.Option(
            ["--cpus"],
            type=click.IntRange(min=1),
            metavar="N",
            help="The target's CPU count, for instances max, 0 or -n (default: this machine's).",
        ),
        click.Option(
            ["--interpreter"],
            multiple=True,
            metavar="NAME=PATH",
            help="Run NAME (node, python3, ...) as PATH on the target; repeatable.",
        ),
        click.Option(
            ["--include-secrets"],
            is_flag=True,
            help="Write secret-looking env values into the units (default: an EnvironmentFile).",
        ),
    ]


@corral.hookimpl
def corral_exporters() -> list[Any]:
    return [
        Exporter(
            name="systemd",
            help="One systemd service per app instance, a target per app and one for all.",
            render=render,
            params=params(),
        )
    ]
