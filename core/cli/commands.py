"""The click group of ``corral``: all :func:`corral.cli.main.main` runs but its fast path.

:func:`build_cli` builds one click group with PM2's commands and their aliases,
each a thin layer over :class:`corral.Client`, defined by theme in the
``cli_*`` modules it imports (:mod:`corral.cli.start`, :mod:`corral.cli.process`,
:mod:`corral.cli.inspect`, :mod:`corral.cli.daemon`, ...); rendering lives in
:mod:`corral.cli.render`. Plugins add commands through the ``corral_cli``
hook, loaded only when a name is not a core command (or for ``--help``), so
``ls`` never pays for plugin discovery. The flags of ``corral start`` are
built on first use from the declared options (:mod:`corral.cli.start`).

Only :mod:`corral.cli.main` imports this module, and only once it needs click.
"""

from __future__ import annotations

from typing import Any

import click

from corral.cli import daemon as cli_daemon
from corral.cli import extra as cli_extra
from corral.cli import imports as cli_import
from corral.cli import inspect as cli_inspect
from corral.cli import logs as cli_logs
from corral.cli import process as cli_process
from corral.cli import reconcile as cli_reconcile
from corral.cli import session
from corral.cli import start as cli_start
from corral.cli import stdin as cli_stdin
from corral.cli import update as cli_update
from corral.cli.base import handle_errors
from corral.errors import PluginError

ALIASES = {
    "list": "ls",
    "status": "ls",
    "del": "delete",
    "save": "dump",
    "show": "describe",
    "send-signal": "sendSignal",
    "info": "describe",  # PM2's aliases of describe
    "desc": "describe",
    "init": "ecosystem",
    "reloadLogs": "reload-logs",
    "gracefulReload": "graceful-reload",  # the name of PM2's API method
    "start-or-restart": "startOrRestart",
    "start-or-reload": "startOrReload",
    "start-or-graceful-reload": "startOrGracefulReload",
    "updatePM2": "update",  # PM2's name of update
    "l": "ls",  # PM2's short names of ls
    "ps": "ls",
}

# commands of first-party plugins: without the plugin, `corral NAME` says which to load
PLUGIN_COMMANDS = {"startup": "startup", "unstartup": "startup"}


class CorralGroup(click.Group):
    """The ``corral`` group: resolves aliases, loads plugin commands on first need."""

    plugins_loaded = False  # set once the corral_cli hook has run for this group

    def _load_plugins(self) -> None:
        if not self.plugins_loaded:
            self.plugins_loaded = True
            # deferred: pluggy and the entry points (~25 ms), only for a command not found
            from corral.hooks import load_plugins

            load_plugins().call_cli(self)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        name = ALIASES.get(name, name)
        command = super().get_command(ctx, name)
        if command is None:
            self._load_plugins()
            command = super().get_command(ctx, name)
        if command is None and name in PLUGIN_COMMANDS and not ctx.resilient_parsing:
            raise PluginError(
                f"`corral {name}` needs the plugin '{PLUGIN_COMMANDS[name]}', which is not "
                "loaded: install it, or add it to CORRAL_PLUGINS"
            )
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        with handle_errors():
            return super().invoke(ctx)


def build_cli() -> click.Group:
    """The click group of every core command; plugin commands join it lazily."""

    @click.group(cls=CorralGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="corral", prog_name="corral")
    @click.option(
        "--address",
        metavar="tcp://HOST:PORT",
        help="Drive the daemon serving rpc_address there (CURVE); or CORRAL_ADDRESS.",
    )
    @click.option(
        "--server-key",
        metavar="FILE|KEY",
        help="The daemon's keys/server.key, or its key; or CORRAL_SERVER_KEY.",
    )
    @click.option(
        "--client-key",
        metavar="FILE",
        help="A .key_secret file the daemon authorised; or CORRAL_CLIENT_KEY.",
    )
    def cli(**remote_flags: Any) -> None:
        """corral: keep programs alive, restart them by policy, log them (PM2 for Python).

        Aliases: list/status/l/ps = ls, del = delete, save = dump, show/info/desc = describe,
        send-signal = sendSignal, reloadLogs = reload-logs, gracefulReload =
        graceful-reload, init = ecosystem, start-or-restart = startOrRestart (and
        start-or-reload, start-or-graceful-reload), updatePM2 = update.
        """

    cli_start.add_commands(cli)
    cli_process.add_commands(cli)
    cli_inspect.add_commands(cli)
    cli_daemon.add_commands(cli)
    cli_reconcile.add_commands(cli, session.client, session.print_table)
    cli_logs.add_commands(cli, session.client)
    cli_stdin.add_commands(cli, session.client)
    cli_import.add_commands(cli, session.client)
    cli_update.add_commands(cli, session.client)
    cli_extra.add_commands(cli, session.client)
    return cli
