"""``corral logrotate show|set|rotate|flush``: the plugin's CLI, RPC calls to the daemon."""

from __future__ import annotations

import json
from typing import Any

import corral


def _target(value: str | None) -> Any:
    return int(value) if value is not None and value.isdigit() else value


@corral.hookimpl
def corral_cli(group: Any) -> None:
    import click  # deferred: only the CLI process needs it, never the daemon

    def client() -> Any:
        # as the core commands do: a test passes its client as the root context's obj
        root = click.get_current_context().find_root()
        if root.obj is None:
            root.obj = corral.connect()
            root.call_on_close(root.obj.disconnect)
        return root.obj

    @click.group("logrotate")
    def logrotate() -> None:
        """Rotate the logs by size and time, keep N, gzip (settings in logrotate.json)."""

    @logrotate.command("show")
    @click.option("--json", "as_json", is_flag=True, help="Print the reply as JSON.")
    def show(as_json: bool) -> None:
        """Print the settings in effect."""
        reply = client().call("logrotate_show")
        if as_json:
            click.echo(json.dumps(reply, indent=2))
            return
        for key, value in reply["settings"].items():
            origin = "" if key in reply["set"] else "  (default)"
            click.echo(f"{key}: {json.dumps(value)}{origin}")
        click.echo(f"# stored in {reply['file']}; {reply['rotations']} rotations since start")

    @logrotate.command("set")
    @click.argument("key")
    @click.argument("value")
    def set_(key: str, value: str) -> None:
        """Change a setting: max_size, retain, compress, date_format, rotate_interval,
        rotate_module, worker_interval."""
        reply = client().call("logrotate_set", key=key, value=value)
        click.echo(f"{reply['key']}: {json.dumps(reply['settings'][reply['key']])}")

    @logrotate.command("rotate")
    @click.argument("target", required=False)
    def rotate(target: str | None) -> None:
        """Rotate the logs of TARGET (default: every app and corral.log) now."""
        for result in client().call("logrotate_rotate", target=_target(target)):
            click.echo(f"rotated {result['rotated']}")
            for path in result["deleted"]:
                click.echo(f"deleted {path}")

    @logrotate.command("flush")
    @click.argument("target", required=False)
    @click.option("--all", "rotated", is_flag=True, help="Delete the rotated files too.")
    def flush(target: str | None, rotated: bool) -> None:
        """Empty the logs of TARGET (default: every app and corral.log)."""
        reply = client().call("logrotate_flush", target=_target(target), all=rotated)
        for path in reply["flushed"]:
            click.echo(f"flushed {path}")
        for path in reply["deleted"]:
            click.echo(f"deleted {path}")

    group.add_command(logrotate)
