"""PM2's smaller commands: ``env``, ``id``, ``cleardump``, ``ecosystem`` (alias
``init``), ``report`` and ``completion``.

- ``corral env ID``: the environment the instance was started with, ``KEY=VALUE``
  lines sorted, secrets masked unless ``--show-secrets`` (PM2's ``pm2 env <id>``).
- ``corral id NAME``: the pm_ids of NAME (or of the script at that path) as PM2
  prints them (``[ 0, 1 ]``, ``[]`` for none; exit 0 either way).
- ``corral cleardump``: the dump holds an empty list; the previous dump becomes
  its ``.bak`` as with ``dump``. No daemon is needed.
- ``corral ecosystem [--format] [FILE]``: a commented starter config
  (:mod:`corral.cli.ecosystem`).
- ``corral report``: a diagnostics bundle (:mod:`corral.cli.report`); starts no daemon.
- ``corral completion SHELL``: the shell's completion script (:mod:`corral.cli.completion`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from corral import paths
from corral.cli import completion
from corral.cli.base import daemon_running, parse_target
from corral.cli.flags import json_flag, print_json, show_secrets_flag
from corral.errors import NotFoundError, OptionError, shorten


def add_commands(cli: click.Group, client_factory: Callable[[], Any]) -> None:
    """Add env, id, cleardump, ecosystem, report and completion to ``cli``."""

    @cli.command()
    @click.argument("target", metavar="ID")
    @show_secrets_flag
    @json_flag
    def env(target: str, show_secrets: bool, as_json: bool) -> None:
        """Print the environment a process was started with, KEY=VALUE a line,
        secrets masked (ID: a pm_id, or the name of an app of one instance)."""
        # deferred: rich and the secret patterns, only env needs them
        from corral.cli.render import printable
        from corral.options.secrets import mask_env  # deferred: the secret patterns, as above

        infos = client_factory().describe(parse_target(target))
        if not infos:
            raise NotFoundError(f"no process matches {shorten(target)}: see `corral ls`")
        if len(infos) > 1:
            ids = ", ".join(str(i.pm_id) for i in infos)
            raise OptionError(
                f"{shorten(target)} has {len(infos)} instances (ids {ids}): give one pm_id",
                field="id",
            )
        variables = dict((infos[0].to_dict().get("pm2_env") or {}).get("env") or {})
        if not show_secrets:
            variables = mask_env(variables)
        if as_json:
            print_json(dict(sorted(variables.items())))
            return
        for key, value in sorted(variables.items()):
            sys.stdout.write(f"{printable(key)}={printable(str(value))}\n")

    @cli.command("id")
    @click.argument("name")
    @json_flag
    def id_(name: str, as_json: bool) -> None:
        """Print the pm_ids of the app NAME (or of the script at path NAME) as PM2 does:
        [ 0, 1 ], or [] when none."""
        from corral.cli.lsdraw import field_of  # deferred: read in place, no env fetched

        script = os.path.abspath(name)
        ids = [
            info.pm_id
            for info in client_factory().list()
            if info.name == name or field_of(info, "pm_exec_path") == script
        ]
        if as_json:
            print_json(ids)
        else:  # node's console.log of an array, which is what `pm2 id` prints
            sys.stdout.write(("[ " + ", ".join(map(str, ids)) + " ]" if ids else "[]") + "\n")

    @cli.command()
    @json_flag
    def cleardump(as_json: bool) -> None:
        """Empty the dump file (`corral resurrect` then starts nothing); the previous
        dump is kept as its .bak, as `dump` keeps it."""
        from corral.daemon.state import (
            save_dump,  # deferred: the state file's module, only cleardump writes it
        )

        path = paths.dump_file(paths.ensure_home())
        had = path.exists()
        aside = save_dump(path, [])
        if aside is not None:
            sys.stderr.write(f"warning: the dump {path} did not read: moved it to {aside}\n")
            had = False
        if as_json:
            print_json({"path": str(path), "backup": f"{path}.bak" if had else None})
            return
        kept = f" (the previous one is now {path}.bak)" if had else ""
        sys.stdout.write(f"emptied the dump {path}{kept}\n")

    @cli.command()
    @click.argument("file", required=False)
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["js", "json", "yaml", "toml"]),
        help="The file's format (default: from FILE's suffix, else js).",
    )
    @click.option("--force", is_flag=True, help="Replace FILE if it exists.")
    @json_flag
    def ecosystem(file: str | None, fmt: str | None, force: bool, as_json: bool) -> None:
        """Write a commented starter config (alias: init): ecosystem.config.js by
        default, ecosystem.config.{json,yaml,toml} with --format; then `corral start
        FILE` starts it. A bare word is PM2's mode argument (`corral init simple`):
        the default file."""
        # deferred: the starter templates, only init needs them
        from corral.cli.ecosystem import starter_path, write_starter

        if file is not None and not {".", "/"} & set(file):
            file = None  # PM2's mode (`pm2 init simple`, `pm2 init echo`): the default file
        path, fmt = starter_path(fmt, file, Path.cwd())
        written = write_starter(path, fmt, force=force)
        if as_json:
            print_json({"path": str(written), "format": fmt})
            return
        sys.stdout.write(
            f"File {written} generated: edit it, then `corral start {file or path.name}`\n"
        )

    @cli.command()
    @json_flag
    def report(as_json: bool) -> None:
        """Print a diagnostics bundle to paste in an issue: versions, the daemon, the
        list, the end of corral.log, plugins and their errors, this shell's variables
        (secrets masked). Starts no daemon."""
        # deferred: the diagnostics bundle (psutil, the plugins), only report needs it
        from corral.cli import report as bundle

        remote = click.get_current_context().find_root().params.get("address")
        running = remote or os.environ.get("CORRAL_ADDRESS") or daemon_running()
        found = bundle.gather(client_factory if running else None)
        sys.stdout.write(json.dumps(found) + "\n" if as_json else bundle.text(found))

    @cli.command("completion")
    @click.argument("shell", type=click.Choice(completion.SHELLS))
    def completion_(shell: str) -> None:
        """Print the completion script of SHELL: commands, flags, and app names and ids
        from a running daemon. Add to ~/.bashrc: eval "$(corral completion bash)"."""
        sys.stdout.write(completion.source(cli, shell))
        sys.stdout.write("\n")

    completion.hook(cli)
