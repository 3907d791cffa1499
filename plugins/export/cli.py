"""``corral export TARGET CONFIG``: one subcommand per exporter, built at startup."""

from __future__ import annotations

import sys
from typing import Any

import click

from .write import export, exporters, output


def export_group() -> click.Group:
    """The ``export`` group, with a subcommand for each installed exporter."""

    @click.group("export")
    def group() -> None:
        """Write an app file for another engine: Kubernetes, systemd, ..."""

    for exporter in exporters().values():
        group.add_command(_command(exporter))
    return group


def _command(exporter: Any) -> click.Command:
    def run(config: str, env_name: str | None, output_to: str, **params: Any) -> None:
        result = export(exporter.name, config, env_name=env_name, params=params)
        written = output(result.files, output_to, separator=exporter.stdout_separator)
        for line in result.warnings:
            sys.stderr.write(f"warning: {line}\n")
        for path, replaced in written:
            sys.stderr.write(f"{'replaced' if replaced else 'wrote'} {path}\n")

    params = [
        click.Argument(["config"]),
        click.Option(["--env", "env_name"], metavar="NAME", help="Use each app's env_NAME."),
        click.Option(
            ["-o", "--output", "output_to"],
            default="-",
            show_default=True,
            metavar="DIR|-",
            help="Write the files into DIR; - prints them.",
        ),
        *exporter.params,
    ]
    return click.Command(exporter.name, callback=run, params=params, help=exporter.help)
