"""``corral update``: bring the daemon to the installed corral (see corral.daemon.upgrade)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import click

from corral.cli.flags import json_flag, print_json
from corral.errors import CorralWarning


def add_commands(cli: click.Group, client_factory: Callable[[], Any]) -> None:
    @cli.command()
    @json_flag
    def update(as_json: bool) -> None:
        """Bring the daemon to the installed corral, every app back under its pm_id."""
        # deferred: the updater (the launcher, pyzmq), only update runs it
        from corral.client.updater import summary_lines

        with warnings.catch_warnings():  # "run corral update": that is what this does
            warnings.simplefilter("ignore", CorralWarning)
            client = client_factory()
            result = client.update()
        if as_json:
            print_json(result)
            return
        for line in summary_lines(result):
            click.echo(line)
