"""The process actions of ``corral``: stop, restart, delete, reset, reload,
graceful-reload, scale and sendSignal.

Each action runs on every target in turn (a name, an id, ``all``, a namespace,
a script, a config file or ``-``), reports every failure, then exits 1 if any;
a restart or reload of a config file brings its apps in line with it
(:mod:`corral.cli.reconcile`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from corral.cli import reconcile as cli_reconcile
from corral.cli import session
from corral.cli.actions import Report, records
from corral.cli.base import parse_target
from corral.cli.flags import json_flag, print_json
from corral.cli.targets import STDIN, app_names, is_config
from corral.client.actions import from_steps
from corral.client.targets import parse_only
from corral.errors import CorralError, OptionError, shorten

if TYPE_CHECKING:
    from corral.client import Client


def add_commands(cli: click.Group) -> None:
    """Add stop, restart, delete, reset, reload, graceful-reload, scale and sendSignal."""

    def action(verb: str, help_text: str, update_env: bool = False, watch: bool = False) -> None:
        @click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
        def command(targets: tuple[str, ...], **flags: Any) -> None:
            _node_args_option(flags)
            if flags.pop("watch", False):
                _watch_toggle(targets, flags)
                return
            _apply(verb, targets, flags)

        command.__doc__ = help_text
        if update_env:
            command = click.option(
                "--update-env",
                is_flag=True,
                help="Use the current environment, not the stored one.",
            )(command)
            command = _node_args_flag(_env_flag(command))
        if watch:
            command = click.option(
                "--watch",
                is_flag=True,
                help="Toggle watching, as PM2: a watched app stops being watched, any "
                "other (stopped too) is watched from now on (`corral watch start NAME`).",
            )(command)
        cli.command(name=verb)(json_flag(cli_reconcile.only_flag(command)))

    action("stop", "Stop processes (name, id, 'all', namespace, script or config file).")
    action("restart", "Restart processes.", update_env=True, watch=True)
    action("delete", "Stop processes and forget them.")
    action("reset", "Zero the restart counters (restart_time, unstable_restarts) of processes.")

    def reloader(verb: str, help_text: str) -> None:
        @click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
        @click.option("--update-env", is_flag=True, help="Use the current environment.")
        @click.option(
            "--parallel",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Instances replaced at once.",
        )
        def command(targets: tuple[str, ...], **flags: Any) -> None:
            _node_args_option(flags)
            _apply(verb, targets, flags)

        command.__doc__ = help_text
        cli.command(name=verb.replace("_", "-"))(
            json_flag(cli_reconcile.only_flag(_node_args_flag(_env_flag(command))))
        )

    reloader(
        "reload",
        "Replace instances one at a time, each new one ready before its old one stops "
        "(cluster mode or a listen socket; other apps are restarted).",
    )
    reloader(
        "graceful_reload",
        "Reload, sending each old instance the 'shutdown' message before SIGINT.",
    )

    @cli.command(context_settings={"ignore_unknown_options": True})  # `scale web -1`
    @click.argument("name")
    @click.argument("count")
    @json_flag
    def scale(name: str, count: str, as_json: bool) -> None:
        """Run COUNT instances of NAME; +N or -N changes the count."""
        client = session.client()
        report = Report("scale", as_json)
        before = sum(1 for info in client.list() if info.name == name)
        with report.progress() as progress:
            infos = client.scale(name, count, **({"progress": progress} if progress else {}))
        report.add(records("scale", infos, before=before))
        if not as_json:
            session.print_table(client)
        report.finish()

    @cli.command("sendSignal")
    @click.argument("signal")
    @click.argument("target")
    @json_flag
    def send_signal(signal: str, target: str, as_json: bool) -> None:
        """Send a signal (SIGUSR2, USR2 or 12) to processes (alias: send-signal)."""
        client = session.client()
        sig = int(signal) if signal.isdigit() else signal
        goal = parse_target(target)
        if isinstance(goal, int):
            infos = client.send_signal_to_process_id(goal, sig)
        else:
            infos = client.send_signal_to_process_name(sig, goal)
        if as_json:
            print_json({"signal": signal, "pm_ids": [info.pm_id for info in infos]})
            return
        session.echo(f"sent {signal} to {len(infos)} processes")


def _env_flag(command: Any) -> Any:
    """``--env NAME`` of restart and reload: env_NAME of a config file target (PM2's)."""
    return click.option(
        "--env", "env_name", metavar="NAME", help="With a config file: apply its env_NAME."
    )(command)


def _node_args_flag(command: Any) -> Any:
    """``--node-args`` / ``--interpreter-args`` of restart and reload (PM2's)."""
    return click.option(
        "--interpreter-args",
        "--node-args",
        "node_args",
        metavar="ARGS",
        help="New arguments for the interpreter, split like a shell line ('null' or '' "
        "removes them).",
    )(command)


def _node_args_option(flags: dict[str, Any]) -> None:
    """Turn the parsed ``--node-args`` into the ``options`` a restart or reload takes."""
    value = flags.pop("node_args", None)
    if value is not None:  # PM2: `--node-args=null` removes them
        flags["options"] = {"node_args": [] if value.strip() == "null" else value}


def _watch_toggle(targets: tuple[str, ...], flags: dict[str, Any]) -> None:
    """`restart --watch` toggles watching, as PM2's: restart, then stop watching every
    app that was watched before, and watch every other one (a stopped one too), as
    `corral watch start NAME` (its own ``watch`` paths, else its cwd)."""
    flags.pop("as_json", None)  # its output is the table, as before
    for flag, given in (("env", flags.pop("env_name", None)), ("only", flags.pop("only", None))):
        if given:
            raise OptionError(
                f"--watch and --{flag} do not go together: restart FILE --{flag} ..., then "
                "corral watch start NAME",
                field=flag,
            )
    client = session.client()
    failed = 0
    for target in targets:
        try:
            before = client.describe(parse_target(target))
            watched = {i.name for i in before if i.pm2_env.get("watch") not in (None, False)}
            infos = client.restart(parse_target(target), **flags)
            for name in sorted({i.name for i in infos}):
                client.call("watch_toggle", name=name, on=name not in watched)
        except CorralError as exc:
            failed += 1
            sys.stderr.write(f"error: {exc}\n")
    if failed < len(targets):
        session.print_table(client)
    if failed:
        raise SystemExit(1)


def _apply(verb: str, targets: tuple[str, ...], flags: dict[str, Any]) -> None:
    """Run one action on each target; report every failure, then exit 1 if any."""
    client = session.client()
    method = getattr(client, verb)
    env_name = flags.pop("env_name", None)
    only = parse_only(flags.pop("only", None))
    report = Report(verb, flags.pop("as_json", False))
    for target in targets:
        try:
            with report.progress() as progress:
                _apply_one(client, method, verb, target, flags, env_name, only, progress, report)
        except CorralError as exc:
            report.error(exc)
    if len(report.errors) < len(targets) and not report.as_json:
        session.print_table(client)
    report.finish()


def _apply_one(
    client: Client,
    method: Any,
    verb: str,
    target: str,
    flags: dict[str, Any],
    env_name: str | None,
    only: list[str] | None,
    progress: Any,
    report: Report,
) -> None:
    """One target of :func:`_apply`; what it did goes to ``report``."""
    if progress is not None and verb in ("restart", "reload", "graceful_reload"):
        flags = {**flags, "progress": progress}
    if only and not is_config(target):
        raise OptionError(
            f"--only picks apps of a config file, and {shorten(target)} is none",
            field="only",
        )
    if verb in cli_reconcile.METHODS and is_config(target):
        # PM2: a restart or reload of a file brings its apps in line with it
        result = cli_reconcile.run(
            client,
            verb,
            target,
            options=flags.get("options"),
            env_name=env_name,
            only=only,
            progress=flags.get("progress"),
            quiet=report.as_json,
        )
        report.add(from_steps(result.steps, result.processes), say=False)
    elif env_name:
        raise OptionError(
            f"--env {shorten(env_name)} applies to a config file, and {shorten(target)} "
            "is none: restart the app with --update-env, or pass its config file",
            field="env",
        )
    elif only or target == STDIN:  # some apps of a file, or of stdin's: by name
        report.add(records(verb, method(app_names(target, only), **flags)))
    else:
        report.add(records(verb, method(parse_target(target), **flags)))
