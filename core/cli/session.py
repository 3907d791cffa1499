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
    """Draw the process table (or the hint of an empty list) on stdout."""
    # deferred: rich (~25 ms) loads only to draw a table
    from corral.cli.render import EMPTY_HINT, make_console
    from corral.cli.table import process_table, terminal_width  # deferred: rich (~25 ms), as above

    infos = client.list()
    console = make_console()
    if infos:
        console.print(process_table(infos, width=terminal_width(console), sort=sort))
    else:
        console.print(EMPTY_HINT)
