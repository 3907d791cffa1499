"""The client of one ``corral`` invocation, and the output the click commands share.

:func:`client` connects on first use (with the group's ``--address``,
``--server-key`` and ``--client-key``) and disconnects when the command ends;
:func:`print_table` draws the process table most commands end with.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

import corral

if TYPE_CHECKING:
    from corral.client import Client


def client() -> Client:
    """The client of this invocation: connected on first use, disconnected at exit.

    Tests pass their own object as ``obj``; it is used as the client.
    """
    root = click.get_current_context().find_root()
    if root.obj is None:
        root.obj = corral.connect(**remote_flags(root))
        root.call_on_close(root.obj.disconnect)
    return root.obj


def remote_flags(root: click.Context) -> dict[str, Any]:
    """``--address``, ``--server-key``, ``--client-key`` as connect() takes them."""
    names = ("address", "server_key", "client_key")
    return {name: root.params[name] for name in names if root.params.get(name)}


def echo(text: str = "") -> None:
    """Write ``text`` and a newline on stdout."""
    sys.stdout.write(text + "\n")


def print_table(client: Client, sort: str | None = None) -> None:
    """Draw the process table (or the hint of an empty list) on stdout: without rich
    where the table needs none of it (corral.cli.lsdraw), else with rich."""
    from corral.cli import lsdraw  # deferred: the table's columns, no rich

    infos = client.list()
    plain = lsdraw.plain_width()
    if plain is not None and infos:
        text = lsdraw.draw(infos, *plain, sort=sort)
        if text is not None:
            sys.stdout.write(text)
            return
    # deferred: rich (~25 ms) loads only to draw a table
    from corral.cli.render import EMPTY_HINT, make_console
    from corral.cli.table import process_table, terminal_width  # deferred: rich, as above

    console = make_console()
    if not infos:
        console.print(EMPTY_HINT)
        return
    system = console.color_system
    if (system is None or system in lsdraw.COLOUR_SYSTEMS) and not console.no_color:
        width = terminal_width(console)
        text = lsdraw.draw(infos, console.width, width, colour=system is not None, sort=sort)
        if text is not None:
            console.file.write(text)
            return
    console.print(process_table(infos, width=terminal_width(console), sort=sort))
