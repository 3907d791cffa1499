"""The ``corral watch`` command: a status table, ``start NAME`` and ``stop NAME``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import corral


def _client(ctx: Any) -> Any:
    """The client of this invocation: the root context's ``obj`` (tests), else a new one."""
    root = ctx.find_root()
    if root.obj is None:
        root.obj = corral.connect()
        root.call_on_close(root.obj.disconnect)
    return root.obj


def status_lines(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        state = "off" if row["off"] else "watching" if row["watching"] else "idle"
        paths = ", ".join(row["paths"]) or "-"
        lines.append(f"{row['name']}: {state} {paths} (restarts: {row['restarts']})")
    return lines or ["no app is watched"]


@corral.hookimpl
def corral_cli(group: Any) -> None:
    import click  # deferred: click loads in the CLI only, never in the daemon

    @click.group("watch", invoke_without_command=True)
    @click.pass_context
    def watch_group(ctx: click.Context) -> None:
        """Watch apps' files: `corral watch` lists, start/stop NAME toggles."""
        if ctx.invoked_subcommand is None:
            click.echo("\n".join(status_lines(_client(ctx).call("watch_status"))))

    def toggle(on: bool) -> click.Command:
        help_text = (
            "Watch NAME's files again (its cwd if it has no `watch` option)."
            if on
            else "Stop watching NAME's files until `corral watch start NAME`."
        )

        @click.command("start" if on else "stop", help=help_text)
        @click.argument("name")
        @click.pass_context
        def command(ctx: click.Context, name: str) -> None:
            rows = _client(ctx).call("watch_toggle", name=name, on=on)
            click.echo("\n".join(status_lines(rows)))

        return command

    watch_group.add_command(toggle(True))
    watch_group.add_command(toggle(False))
    group.add_command(watch_group)
