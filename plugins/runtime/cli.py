"""``corral runtime CONFIG|SCRIPT`` and ``corral ready [NAME]``."""

from __future__ import annotations

import sys
from typing import Any

import click

import corral
from corral import api

from .init import become_init
from .run import EXIT_FAILED, EXIT_USAGE, ended_well, run, runtime_apps, say


@click.command("runtime", context_settings={"ignore_unknown_options": False})
@click.argument("target")
@click.option("--only", metavar="NAMES", help="Run only these apps of the file (comma-separated).")
@click.option("-i", "--instances", type=int, help="Run this many instances of each app.")
@click.option("--name", help="The app's name (a script).")
@click.option("--env", "env_name", metavar="NAME", help="Use each app's env_NAME.")
@click.option("--json", "as_json", is_flag=True, help="The apps' output as JSON lines.")
def runtime_command(
    target: str,
    only: str | None,
    instances: int | None,
    name: str | None,
    env_name: str | None,
    as_json: bool,
) -> None:
    """Run a config file's apps (or one script) in the foreground, for a container.

    As PID 1 it reaps every zombie. SIGTERM, SIGINT and SIGQUIT stop every app
    (each with its own kill_signal and kill_timeout), then it exits 0; SIGHUP
    reloads them. The apps' output goes to stdout and stderr, each line prefixed
    with its app's name (--json: JSON lines), and to no file unless an app's
    options name one. Exit 1 when an app errored (it will not be restarted) or
    every app ended and one failed; exit 2 when nothing could be started.
    """
    become_init()  # as PID 1: the parent reaps and passes signals on; the child goes on
    try:
        chosen = [n.strip() for n in only.split(",") if n.strip()] if only else None
        apps = runtime_apps(target, only=chosen, instances=instances, name=name)
    except corral.CorralError as exc:
        say(str(exc))
        sys.exit(EXIT_USAGE)
    sys.exit(run(apps, env_name=env_name, as_json=as_json))


@click.command("ready")
@click.argument("name", required=False)
def ready_command(name: str | None) -> None:
    """Exit 0 when every instance of NAME (of every app, without NAME) is online and
    ready, else 1: a readiness probe for a container run by `corral runtime`.
    Never starts a daemon."""
    client = api.running_client(api.corral_home())
    if client is None:
        click.echo("no daemon runs here", err=True)
        sys.exit(EXIT_FAILED)
    with client:
        infos = [i for i in client.list() if name is None or i.name == name]
    waiting = [i for i in infos if not _ready(i)]
    if not infos:
        click.echo(f"no app named {name}" if name else "no app", err=True)
        sys.exit(EXIT_FAILED)
    for info in waiting:
        click.echo(f"{info.name} (pm_id {info.pm_id}) is {info.status}, not ready", err=True)
    sys.exit(EXIT_FAILED if waiting else 0)


def _ready(info: Any) -> bool:
    """Online and ready; or a job (``autorestart: false``) that ended well."""
    if info.status == "online":
        return bool(info.pm2_env.get("ready"))
    job = info.pm2_env.get("autorestart") is False
    return job and info.status == "stopped" and ended_well(info)
