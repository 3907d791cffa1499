"""The commands that show processes: ls, describe, jlist, prettylist, pid, plugins
and monit.

Tables and panels are drawn with rich, imported only when one is drawn.
"""

from __future__ import annotations

import os
import sys

import click

from corral.cli import session
from corral.cli.base import parse_target, print_jlist
from corral.cli.flags import json_flag, print_json, show_secrets_flag
from corral.errors import NotFoundError, shorten


def add_commands(cli: click.Group) -> None:
    """Add ls, describe, jlist, prettylist, pid, plugins and monit to ``cli``."""

    @cli.command()
    @click.option(
        "--sort",
        metavar="FIELD[:asc|:desc]",
        help="Order by id, name, namespace, pid, cpu, mem, restarts, uptime or status.",
    )
    @click.option("-m", "--mini-list", "mini", is_flag=True, help="PM2's mini list, no table.")
    @json_flag
    def ls(sort: str | None, mini: bool, as_json: bool) -> None:
        """List the processes (aliases: list, status, l, ps). Columns that do not fit are
        dropped: watching, namespace, user, pid, uptime, mode, restarts, cpu, mem."""
        from corral.cli import lsdraw  # deferred: the table's columns, no rich

        lsdraw.parse_sort(sort)  # a bad --sort is refused before the daemon is asked
        if not (mini or as_json):
            session.print_table(session.client(), sort)
            return
        from corral.cli import (
            table as cli_table,  # deferred: rich (~25 ms) loads only to draw a table
        )

        infos = session.client().list(env=as_json)  # --json: the jlist entries, env too
        if as_json:
            session.echo(cli_table.ls_json(infos, sort=sort))
        else:
            sys.stdout.write(cli_table.mini_list(infos, sort=sort))

    @cli.command()
    @click.argument("target")
    @show_secrets_flag
    @json_flag
    def describe(target: str, show_secrets: bool, as_json: bool) -> None:
        """Show everything about a process: the settings that differ from the default,
        readiness, last exit, restarts, log files, the plugins acting on it, and its
        variables that differ from this shell's, secrets masked (alias: show)."""
        from corral.cli import (
            describe as shown,  # deferred: rich (~25 ms) loads only to draw the panels
        )
        from corral.cli.render import make_console  # deferred: rich (~25 ms), as above

        client = session.client()
        infos = client.describe(parse_target(target))
        if not infos:
            raise NotFoundError(f"no process matches {shorten(target)}: see `corral ls`")
        facts = shown.plugin_facts(client)
        if as_json:
            session.echo(shown.describe_json(infos, facts, show_secrets=show_secrets))
            return
        console, defaults = make_console(), shown.declared_defaults()
        flags = {"show_secrets": show_secrets, "defaults": defaults, "facts": facts}
        for info in infos:
            console.print(shown.describe_panel(info, local_env=os.environ, **flags))

    @cli.command()
    def jlist() -> None:
        """Print the process list as one line of JSON, as `pm2 jlist`."""
        print_jlist(session.client())

    @cli.command()
    def prettylist() -> None:
        """Print the process list as indented JSON."""
        print_jlist(session.client(), indent=2)

    @cli.command()
    @click.option(
        "--errors", is_flag=True, help="List each plugin's recorded errors and dropped calls."
    )
    @json_flag
    def plugins(errors: bool, as_json: bool) -> None:
        """List the plugins loaded in the daemon."""
        # deferred: rich (~25 ms) loads only to draw a table
        from corral.cli.render import make_console, plugins_table

        loaded = session.client().plugins()
        if as_json:
            print_json(loaded)
            return
        if not errors:
            make_console().print(plugins_table(loaded))
            return
        for plugin in loaded:
            for error in plugin.get("errors") or []:
                session.echo(f"{plugin['name']}: {error}")
            for hook, count in (plugin.get("dropped") or {}).items():
                session.echo(f"{plugin['name']}: dropped {count} {hook} calls (its queue was full)")

    @cli.command()
    def monit() -> None:
        """A live view of the processes and the selected one's logs (q quits)."""
        from corral.cli.monit import (
            run_monit,  # deferred: rich.live and the monit screen, only for monit
        )

        run_monit(session.client())

    # PM2's `pm2 pid`, for scripts (`kill -0 $(corral pid web)`)
    @cli.command()
    @click.argument("name", required=False)
    @json_flag
    def pid(name: str | None, as_json: bool) -> None:
        """Print the pid of each running instance of NAME (of every app without NAME),
        one a line; nothing for a name no app has, as PM2."""
        pids = [
            i.pid for i in session.client().list() if (name is None or i.name == name) and i.pid
        ]
        if as_json:
            print_json(pids)
            return
        for pid in pids:
            session.echo(str(pid))
