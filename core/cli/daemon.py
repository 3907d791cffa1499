"""The commands of the daemon and its saved state: ping, kill, dump (alias save),
resurrect, flush and reload-logs.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from corral.cli import session
from corral.cli.actions import Report, records
from corral.cli.base import daemon_running, parse_target, print_ping
from corral.cli.flags import json_flag, print_json
from corral.errors import CorralWarning, PluginError, ProtocolError

if TYPE_CHECKING:
    from corral.client import Client


def add_commands(cli: click.Group) -> None:
    """Add flush, reload-logs, dump, resurrect, kill and ping to ``cli``."""

    @cli.command()
    @click.argument("target", required=False)
    @click.option(
        "--all", "rotated", is_flag=True, help="Delete rotated files too (the logrotate plugin)."
    )
    @json_flag
    def flush(target: str | None, rotated: bool, as_json: bool) -> None:
        """Empty the log files of a process, or of every process and corral.log."""
        client = session.client()
        chosen = parse_target(target) if target else None
        if rotated:
            result = _flush_rotated(client, chosen)
            paths, deleted = result["flushed"], result["deleted"]
        else:
            paths, deleted = client.flush(chosen) if target else client.flush(), []
        if as_json:
            print_json({"flushed": paths, "deleted": deleted})
            return
        for path in paths:
            session.echo(f"flushed {path}")
        for path in deleted:
            session.echo(f"deleted {path}")

    @cli.command("reload-logs")
    @json_flag
    def reload_logs(as_json: bool) -> None:
        """Reopen every log file after an external rotation (the logrotate plugin's)."""
        paths = session.client().reload_logs()
        if as_json:
            print_json({"reopened": paths})
            return
        session.echo(f"reopened {len(paths)} log files")

    @cli.command()
    @click.option("--force", is_flag=True, help="Save even an empty process list.")
    @json_flag
    def dump(force: bool, as_json: bool) -> None:
        """Save the process list, for `corral resurrect` (alias: save)."""
        result = session.client().dump(force=force)
        for warning in result.get("warnings", ()):
            sys.stderr.write(f"warning: {warning}\n")
        if as_json:
            print_json(result)
            return
        session.echo(f"saved {result['count']} apps to {result['path']}")

    @cli.command()
    @json_flag
    def resurrect(as_json: bool) -> None:
        """Start the processes saved by `corral dump` (from its .bak if it does not read)."""
        import warnings

        client = session.client()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", CorralWarning)
            infos = client.resurrect()
        for warning in said:
            if issubclass(warning.category, CorralWarning):
                sys.stderr.write(f"warning: {warning.message}\n")
            else:
                warnings.showwarning(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        report = Report("resurrect", as_json=as_json)
        report.add(records("resurrect", infos))
        if not as_json:
            session.print_table(client)
        report.finish()

    @cli.command()
    @json_flag
    def kill(as_json: bool) -> None:
        """Stop every process and the daemon."""
        remote = session.remote_flags(click.get_current_context().find_root()).get("address")
        running = bool(remote or os.environ.get("CORRAL_ADDRESS")) or daemon_running()
        if running:
            session.client().kill_daemon()
        if as_json:
            print_json({"killed": running})
        else:
            session.echo("daemon killed" if running else "no daemon is running")

    @cli.command()
    @json_flag
    def ping(as_json: bool) -> None:
        """Check the daemon answers (starting it if none runs), and which corral it runs."""
        print_ping(session.client(), as_json=as_json)


def _flush_rotated(client: Client, target: Any) -> dict[str, Any]:
    try:
        return client.call("logrotate_flush", target=target, all=True)
    except ProtocolError as exc:
        raise PluginError(
            "flush --all needs the plugin 'logrotate', which is not loaded in the daemon"
        ) from exc
