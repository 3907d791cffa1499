"""``corral startOrRestart``, ``startOrReload``, ``startOrGracefulReload``, and the plan
lines that ``start``, ``restart`` and ``reload`` of a config file print.

Each brings a config file's apps in line with it (:mod:`corral.daemon.commands.reconcile`) and
prints one line per app: ``web: started (2 instances)``, ``api: restarted
(changed: max_memory_restart)``, ``worker: scaled 2->4, restarted``, ... With
``--dry-run`` it prints the plan and changes nothing; ``--prune`` deletes the
apps this file started that it no longer lists. Then, as ``corral start``, they
watch the instances for min_uptime and exit 1 when no instance of an app stayed up
(``--no-wait``: not).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from corral.cli.actions import Report
from corral.cli.base import parse_env
from corral.cli.flags import json_flag
from corral.cli.targets import STDIN, stdin_apps
from corral.client.actions import from_steps

if TYPE_CHECKING:
    from corral.client import Client
    from corral.client.actions import Progress
    from corral.client.info import ProcessInfo
    from corral.client.verdict import StartVerdict
    from corral.daemon.commands.reconcile import Reconciled

VERBS = {
    "startOrRestart": "start_or_restart",
    "startOrReload": "start_or_reload",
    "startOrGracefulReload": "start_or_graceful_reload",
}
METHODS = {
    "start": "start_or_restart",
    "restart": "start_or_restart",
    "reload": "start_or_reload",
    "graceful_reload": "start_or_graceful_reload",
}


def print_plan(result: Reconciled) -> None:
    """The plan's lines on stdout, said as a plan when nothing was done."""
    if result.dry_run:
        sys.stdout.write("dry run: nothing was changed; the plan:\n")
    for line in result.lines:
        sys.stdout.write(("  " if result.dry_run else "") + line + "\n")


def run(
    client: Client,
    verb: str,
    target: str,
    *,
    options: dict[str, Any] | None = None,
    env_name: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    only: list[str] | None = None,
    progress: Progress | None = None,
    quiet: bool = False,
) -> Reconciled:
    """Reconcile ``target`` (a config file, or ``-``: one on stdin) for ``verb`` and
    print the plan's lines (not when ``quiet``: --json); ``only`` picks some of its
    apps (``--only``); ``progress`` gets corral.client.actions' events."""

    method = getattr(client, METHODS.get(verb) or VERBS[verb])
    config: Any = stdin_apps() if target == STDIN else target
    flags = {"env_name": env_name, "prune": prune, "dry_run": dry_run, "only": only}
    if progress is not None:
        flags["progress"] = progress
    result = method(config, options, **flags)
    if not quiet:
        print_plan(result)
    return result


def watch_started(client: Client, infos: list[ProcessInfo], no_wait: bool) -> StartVerdict | None:
    """The start verdict (None with ``no_wait``); ctrl-C in its wait says what was started."""
    if no_wait:
        return None
    try:
        return client.wait_started(infos)
    except KeyboardInterrupt:
        names = ", ".join(sorted({i.name for i in infos})) or "nothing"
        sys.stderr.write(
            f"interrupted: {names} started, not watched for min_uptime: "
            "`corral ls` shows their status\n"
        )
        raise SystemExit(130) from None


def report_verdict(verdict: StartVerdict | None) -> None:
    """The start verdict's lines on stderr; exit 1 when an app has no instance up."""
    if verdict is None:
        return
    for level, text in verdict.report():
        sys.stderr.write(f"{level}: {text}\n")
    if not verdict.ok:
        raise SystemExit(1)


def only_flag(command: Callable) -> Callable:
    """``--only NAME[,NAME]``: just these apps of a config file (PM2's flag)."""
    return click.option(
        "--only", "only", metavar="NAME[,NAME]", help="Only these apps of a config file."
    )(command)


def plan_flags(command: Callable) -> Callable:
    """``--dry-run`` and ``--prune``, as every reconciling command takes them."""
    command = click.option(
        "--prune",
        is_flag=True,
        help="Delete the apps this file started that it no longer lists.",
    )(command)
    return click.option(
        "--dry-run", is_flag=True, help="Print what would happen to each app; change nothing."
    )(command)


def add_commands(cli: click.Group, client: Callable[[], Client], table: Callable) -> None:
    """The three PM2 commands, on ``cli``; ``table`` prints the process list after."""
    for verb in VERBS:

        def make(verb: str) -> None:
            @click.argument("target", metavar="CONFIG_FILE")
            @click.option(
                "--env",
                "env_values",
                multiple=True,
                metavar="NAME|KEY=VAL",
                help="Apply env_NAME from the file, or set a variable (repeatable).",
            )
            @plan_flags
            @click.option(
                "--no-wait", is_flag=True, help="Do not watch the instances for min_uptime."
            )
            @json_flag
            def command(
                target: str,
                env_values: tuple[str, ...],
                prune: bool,
                dry_run: bool,
                no_wait: bool,
                as_json: bool,
            ) -> None:
                env, env_name = parse_env(env_values)
                options = {"env": env} if env else None
                conn = client()
                report = Report(verb, as_json)
                with report.progress() as progress:
                    result = run(
                        conn,
                        verb,
                        target,
                        options=options,
                        env_name=env_name,
                        prune=prune,
                        dry_run=dry_run,
                        progress=progress,
                        quiet=as_json,
                    )
                report.add(from_steps(result.steps, result.processes), say=False)
                if not dry_run:  # the start verdict, as `corral start FILE` gives it
                    verdict = watch_started(conn, result.processes, no_wait)
                    if not as_json:
                        table(conn)
                    report.report_verdict(verdict)
                report.finish()

            action = "reload" if "Reload" in verb else "restart"
            command.__doc__ = (
                f"Bring a config file's apps in line with it: start the new ones, "
                f"{action} the others with the file's options (a new script replaces an "
                "app, new instances rescale it); one line per app says what happened."
            )
            cli.command(name=verb)(command)

        make(verb)


__all__ = [
    "METHODS",
    "VERBS",
    "add_commands",
    "only_flag",
    "plan_flags",
    "print_plan",
    "report_verdict",
    "run",
    "watch_started",
]
