"""``corral import FILE``: a supervisord or circus config, printed as an ecosystem file.

The file is read as ``corral start FILE`` reads it (:mod:`corral.options.imports`); the
ecosystem file goes to stdout (YAML by default: corral reads it without node,
and it carries comments), and what has no equivalent is listed both in its
header comments and in one warning line on stderr. No daemon is needed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from corral.errors import ConfigError


def add_commands(cli: click.Group, client_factory: Callable[[], Any]) -> None:
    """Add ``import`` to ``cli`` (``client_factory`` is unused: it needs no daemon)."""

    @cli.command(name="import")
    @click.argument("file", type=click.Path(dir_okay=False))
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["yaml", "js", "json", "toml"]),
        default="yaml",
        show_default=True,
        help="Format of the ecosystem file printed.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON document (see README, "
                  "JSON output): the ecosystem file as JSON, as --format json.")  # fmt: skip
    def import_(file: str, fmt: str, as_json: bool) -> None:
        """Print the ecosystem file equivalent to a supervisord.conf ([program:x]
        sections) or a circus.ini ([watcher:x] sections); what has no equivalent is
        listed in a warning. `corral start FILE` starts such a file directly."""
        # deferred: the converters and yaml, only import needs them
        from corral.options.imports import KINDS, convert, ini_kind, not_carried
        from corral.options.imports.ecosystem import render  # deferred: yaml's writer, as above

        if not os.path.isfile(file):
            what = "is not a file" if os.path.exists(file) else "does not exist"
            raise ConfigError(f"{file} {what}: give a supervisord.conf or a circus.ini")
        apps, notes = convert(file)
        if as_json:
            fmt = "json"
        kind = KINDS[ini_kind(file) or "supervisor"]
        comments = [f"{len(apps)} apps imported by `corral import` from {kind}'s {file}"]
        if notes:
            comments.append("not carried over: " + ", ".join(notes))
            sys.stderr.write(f"warning: {not_carried(file, notes)}\n")
        sys.stdout.write(render(apps, fmt, comments))
