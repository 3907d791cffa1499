"""The click commands of ``corral``: all :func:`corral.cli.main` runs but its fast path.

:func:`build_cli` builds one click group with PM2's commands and their aliases,
each a thin layer over :class:`corral.Client`; rendering lives in
:mod:`corral.cli_render`. Plugins add commands through the ``corral_cli``
hook, loaded only when a name is not a core command (or for ``--help``), so
``ls`` never pays for plugin discovery. The flags of ``corral start`` are
built on first use from the declared options, one per core option in
:data:`START_FLAGS` and one per option of a loaded plugin.

Only :mod:`corral.cli` imports this module, and only once it needs click.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

import corral

from . import cli_extra, cli_import, cli_logs, cli_reconcile, cli_stdin, cli_update
from .actions import from_steps
from .cli_actions import Report, records
from .cli_base import (
    daemon_running,
    handle_errors,
    parse_env,
    parse_opts,
    parse_target,
    print_jlist,
    print_ping,
    stop_exit_codes,
)
from .cli_flags import json_flag, print_json, show_secrets_flag
from .cli_targets import STDIN, app_names, is_config
from .errors import (
    CorralError,
    CorralWarning,
    NotFoundError,
    OptionError,
    PluginError,
    ProtocolError,
    shorten,
)
from .targets import parse_only

if TYPE_CHECKING:
    from .client import Client

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

# The core flags of `corral start`: (option name, flag declarations, kind). Help
# text comes from CORE_OPTIONS. kind: "value", "flag" (sets True), "negate"
# (sets False), "optional" (a flag that may take a value, as PM2's --log).
START_FLAGS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("name", ("-n", "--name"), "value"),
    ("instances", ("-i", "--instances"), "value"),
    ("exec_interpreter", ("--interpreter",), "value"),
    ("node_args", ("--interpreter-args", "--node-args"), "value"),
    ("cwd", ("--cwd",), "value"),
    ("log_date_format", ("--log-date-format",), "value"),
    ("time", ("--time",), "flag"),
    ("merge_logs", ("--merge-logs",), "flag"),
    ("out_file", ("-o", "--output"), "value"),
    ("error_file", ("-e", "--error"), "value"),
    ("log_file", ("--log",), "optional"),
    ("pid_file", ("--pid",), "value"),
    ("max_restarts", ("--max-restarts",), "value"),
    ("min_uptime", ("--min-uptime",), "value"),
    ("restart_delay", ("--restart-delay",), "value"),
    ("exp_backoff_restart_delay", ("--exp-backoff-restart-delay",), "value"),
    ("kill_timeout", ("--kill-timeout",), "value"),
    ("autorestart", ("--no-autorestart",), "negate"),
    ("stop_exit_codes", ("--stop-exit-codes",), "value"),
    ("namespace", ("--namespace",), "value"),
    ("force", ("-f", "--force"), "flag"),
    ("port", ("--port",), "value"),
    ("exec_mode", ("-x", "--exec-mode"), "value"),
    ("listen", ("--listen",), "value"),
    ("wait_ready", ("--wait-ready",), "flag"),
    ("listen_timeout", ("--listen-timeout",), "value"),
    ("shutdown_with_message", ("--shutdown-with-message",), "flag"),
)
_NO_VALUE = "\x00"  # what `--log` alone parses to


def start_options(values: dict[str, Any], kinds: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The options dict `corral start` sends, from the parsed flag values."""
    options: dict[str, Any] = {}
    for param, (name, kind) in kinds.items():
        value = values.get(param)
        if value is None or value is False:
            continue
        if kind == "flag":
            options[name] = True
        elif kind == "negate":
            options[name] = False
        elif kind == "optional":
            options[name] = True if value == _NO_VALUE else value
        elif name == "stop_exit_codes":
            options[name] = stop_exit_codes(value)
        else:
            options[name] = value
    return options


def _client() -> Client:
    """The client of this invocation: connected on first use, disconnected at exit.

    Tests pass their own object as ``obj``; it is used as the client.
    """
    root = click.get_current_context().find_root()
    if root.obj is None:
        root.obj = corral.connect(**_remote_flags(root))
        root.call_on_close(root.obj.disconnect)
    return root.obj


def _remote_flags(root: click.Context) -> dict[str, Any]:
    """``--address``, ``--server-key``, ``--client-key`` as connect() takes them."""
    names = ("address", "server_key", "client_key")
    return {name: root.params[name] for name in names if root.params.get(name)}


def _echo(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _print_table(client: Client, sort: str | None = None) -> None:
    # deferred: rich (~25 ms) loads only to draw a table
    from .cli_render import EMPTY_HINT, make_console
    from .cli_table import process_table, terminal_width  # deferred: rich (~25 ms), as above

    infos = client.list()
    console = make_console()
    if infos:
        console.print(process_table(infos, width=terminal_width(console), sort=sort))
    else:
        console.print(EMPTY_HINT)


METAVARS = {"int": "N", "ms": "MS", "bytes": "SIZE", "list": "ARGS", "int_list": "CODES"}


def sentence(text: str) -> str | None:
    """An option's help ("restart the app when it exits") as a sentence for --help."""
    text = text.strip()
    if not text:
        return None
    first = text.split(maxsplit=1)[0]
    if first.replace("-", "").isalpha():  # not an identifier (follow_symlinks), a quote
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def _flag_kind(option: Any) -> str:
    kind = getattr(option, "type", None)
    if kind == "bool":
        return "flag"
    # `--watch` alone means true, `--watch src` a value (PM2's flags read the same way)
    return "optional" if kind in ("bool_or_list", "bool_or_str") else "value"


def _make_flag(decls: tuple[str, ...], param: str, kind: str, option: Any) -> Any:
    """One click option for an app option; its help and metavar come from the Option."""
    help_text = sentence(getattr(option, "help", None) or "")
    if kind == "negate" and help_text:
        help_text = f"Do not {help_text[0].lower()}{help_text[1:]}"
    if kind in ("flag", "negate"):
        return click.Option([*decls, param], is_flag=True, default=None, help=help_text)
    metavar = METAVARS.get(getattr(option, "type", ""), "TEXT")
    if kind == "optional":
        return click.Option(
            [*decls, param], is_flag=False, flag_value=_NO_VALUE, metavar="[PATH]", help=help_text
        )
    return click.Option([*decls, param], metavar=metavar, help=help_text)


def _start_params(with_plugins: bool) -> tuple[list[Any], dict[str, tuple[str, str]]]:
    """Flags for the core options in START_FLAGS, then one per loaded plugin's option.

    Returns the click parameters and, per parameter, (option name, kind).
    """
    if with_plugins:
        # deferred: pluggy and the entry points (~25 ms), only for the plugins' options
        from .hooks import load_plugins

        declared = load_plugins().app_options()
    else:
        # deferred: the options table, only for the flags of start
        from .option_table import CORE_OPTIONS

        declared = list(CORE_OPTIONS)
    by_key = {}
    for option in declared:
        for key in (option.name, *option.aliases):
            by_key.setdefault(key, option)
    params, kinds, taken = [], {}, set()
    for name, decls, kind in START_FLAGS:
        option = by_key.get(name)
        canonical = option.name if option is not None else name
        params.append(_make_flag(decls, f"o_{canonical}", kind, option))
        kinds[f"o_{canonical}"] = (canonical, kind)
        taken.update((canonical, *decls))
    for option in declared:
        flag = "--" + option.name.replace("_", "-")
        if option.plugin == "core" or option.name in taken or flag in taken:
            continue
        kind = _flag_kind(option)
        params.append(_make_flag((flag,), f"o_{option.name}", kind, option))
        kinds[f"o_{option.name}"] = (option.name, kind)
        taken.update((option.name, flag))
    return params, kinds


# commands of first-party plugins: without the plugin, `corral NAME` says which to load
PLUGIN_COMMANDS = {"startup": "startup", "unstartup": "startup"}


class CorralGroup(click.Group):
    """The ``corral`` group: resolves aliases, loads plugin commands on first need."""

    plugins_loaded = False  # set once the corral_cli hook has run for this group

    def _load_plugins(self) -> None:
        if not self.plugins_loaded:
            self.plugins_loaded = True
            # deferred: pluggy and the entry points (~25 ms), only for a command not found
            from .hooks import load_plugins

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


class StartCommand(click.Command):
    """`corral start`, whose option flags are built on first use.

    Plugins are loaded (an entry-point scan) only when the command line has a
    flag the core does not know, or asks for help: a plain start stays fast.
    """

    kinds: dict[str, tuple[str, str]] | None = None

    def _build(self, with_plugins: bool) -> None:
        if self.kinds is None:
            params, self.kinds = _start_params(with_plugins)
            self.params = params + self.params

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        self._build(with_plugins=_needs_plugin_flags(args))
        if "--" in args:  # what follows `--` is every script's args (PM2), never a target
            cut = args.index("--")
            args, ctx.meta["corral.script_args"] = args[:cut], tuple(args[cut + 1 :])
        return super().parse_args(ctx, args)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        self._build(with_plugins=True)
        return super().get_params(ctx)


def _needs_plugin_flags(args: list[str]) -> bool:
    """Whether ``args`` (before ``--``) hold a flag that no core option of start declares."""
    known = {"--env", "--opt", "--no-wait", "-h", "--help", "--dry-run", "--prune", "--only"}
    known.update(decl for _, decls, _ in START_FLAGS for decl in decls)
    known.update(
        "--no-" + d[2:] for _, decls, _ in START_FLAGS for d in decls if d.startswith("--")
    )
    for arg in args:
        if arg == "--":
            return False
        if arg in ("-h", "--help"):
            return True
        if arg.startswith("-") and arg.split("=", 1)[0] not in known:
            return True
    return False


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

    @cli.command(cls=StartCommand)
    @click.argument("targets", nargs=-1, required=True, metavar="TARGET... [-- ARGS...]")
    @click.option(
        "--env",
        "env_values",
        multiple=True,
        metavar="KEY=VAL|NAME",
        help="Set a variable (KEY=VAL, repeatable), or apply env_NAME from the config.",
    )
    @click.option(
        "--opt",
        "opt_pairs",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any other option, e.g. --opt max_memory_restart=200M (repeatable).",
    )
    @cli_reconcile.only_flag
    @cli_reconcile.plan_flags
    @click.option(
        "--no-wait",
        "no_wait",
        is_flag=True,
        help="Return at once; do not watch the new instances for min_uptime.",
    )
    @json_flag
    @click.pass_context
    def start(
        ctx: click.Context,
        targets: tuple[str, ...],
        env_values: tuple[str, ...],
        opt_pairs: tuple[str, ...],
        only: str | None,
        dry_run: bool,
        prune: bool,
        no_wait: bool,
        as_json: bool,
        **values: Any,
    ) -> None:
        """Start scripts or config files (`-`: a JSON config on stdin), or restart apps
        by name or id; each script is its own app, and ARGS after `--` go to each.

        A config file's apps are brought in line with it (see startOrRestart);
        --only a,b picks some of them. Then watch the new instances for min_uptime
        (1 s by default): each one that exits meanwhile is named with its last error
        line and the fix, and the command exits 1 when no instance of an app stayed
        up (--no-wait: not)."""
        options = start_options(values, ctx.command.kinds or {})
        env, env_name = parse_env(env_values)
        if env:
            options["env"] = env
        script_args = ctx.meta.get("corral.script_args", ())
        if script_args:
            options["args"] = list(script_args)
        options.update(parse_opts(opt_pairs))
        picked = parse_only(only)
        configs = [t for t in targets if is_config(t)]
        if len(targets) > 1 and "name" in options:
            raise OptionError(
                f"--name names one app, and this start has {len(targets)} targets: "
                "start them one by one, each with its --name",
                field="name",
            )
        if (dry_run or prune or picked) and len(configs) < len(targets):
            flag = "--only applies" if picked else "--dry-run and --prune apply"
            raise OptionError(f"{flag} to a config file (or '-', one on stdin)", field="target")
        client = _client()
        infos: list[Any] = []
        report = Report("start", as_json)
        for target in targets:
            with report.progress() as progress:
                if is_config(target):
                    flags = {"env_name": env_name, "prune": prune, "dry_run": dry_run}
                    result = cli_reconcile.run(
                        client, "start", target, options=options or None, only=picked,
                        progress=progress, quiet=as_json, **flags,
                    )  # fmt: skip
                    got: list[Any] = result.processes
                else:
                    goal = parse_target(target)
                    kw = {"progress": progress} if progress else {}  # a tty's status line
                    got = client.start(goal, options or None, env_name=env_name, **kw)
            infos.extend(got)
            report.add(records("start", got), say=not is_config(target))  # plan lines said it
        if not dry_run:
            names = sorted({i.name for i in infos})
            what = names[0] if len(names) == 1 else f"{len(names)} apps"
            with report.waiting(f"watching {what} for min_uptime"):
                verdict = cli_reconcile.watch_started(client, infos, no_wait)
            if not as_json:
                _print_table(client)
            report.report_verdict(verdict)
        report.finish()

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
        client = _client()
        report = Report("scale", as_json)
        before = sum(1 for info in client.list() if info.name == name)
        with report.progress() as progress:
            infos = client.scale(name, count, **({"progress": progress} if progress else {}))
        report.add(records("scale", infos, before=before))
        if not as_json:
            _print_table(client)
        report.finish()

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
        from . import cli_table  # deferred: rich (~25 ms) loads only to draw a table

        cli_table.parse_sort(sort)  # a bad --sort is refused before the daemon is asked
        if not (mini or as_json):
            _print_table(_client(), sort)
            return
        infos = _client().list()
        if as_json:
            _echo(cli_table.ls_json(infos, sort=sort))
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
        from . import cli_describe as shown  # deferred: rich (~25 ms) loads only to draw the panels
        from .cli_render import make_console  # deferred: rich (~25 ms), as above

        client = _client()
        infos = client.describe(parse_target(target))
        if not infos:
            raise NotFoundError(f"no process matches {shorten(target)}: see `corral ls`")
        facts = shown.plugin_facts(client)
        if as_json:
            _echo(shown.describe_json(infos, facts, show_secrets=show_secrets))
            return
        console, defaults = make_console(), shown.declared_defaults()
        flags = {"show_secrets": show_secrets, "defaults": defaults, "facts": facts}
        for info in infos:
            console.print(shown.describe_panel(info, local_env=os.environ, **flags))

    @cli.command()
    def jlist() -> None:
        """Print the process list as one line of JSON, as `pm2 jlist`."""
        print_jlist(_client())

    @cli.command()
    def prettylist() -> None:
        """Print the process list as indented JSON."""
        print_jlist(_client(), indent=2)

    @cli.command()
    @click.argument("target", required=False)
    @click.option(
        "--all", "rotated", is_flag=True, help="Delete rotated files too (the logrotate plugin)."
    )
    @json_flag
    def flush(target: str | None, rotated: bool, as_json: bool) -> None:
        """Empty the log files of a process, or of every process and corral.log."""
        client = _client()
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
            _echo(f"flushed {path}")
        for path in deleted:
            _echo(f"deleted {path}")

    @cli.command("reload-logs")
    @json_flag
    def reload_logs(as_json: bool) -> None:
        """Reopen every log file after an external rotation (the logrotate plugin's)."""
        paths = _client().reload_logs()
        if as_json:
            print_json({"reopened": paths})
            return
        _echo(f"reopened {len(paths)} log files")

    @cli.command()
    @click.option("--force", is_flag=True, help="Save even an empty process list.")
    @json_flag
    def dump(force: bool, as_json: bool) -> None:
        """Save the process list, for `corral resurrect` (alias: save)."""
        result = _client().dump(force=force)
        for warning in result.get("warnings", ()):
            sys.stderr.write(f"warning: {warning}\n")
        if as_json:
            print_json(result)
            return
        _echo(f"saved {result['count']} apps to {result['path']}")

    @cli.command()
    @json_flag
    def resurrect(as_json: bool) -> None:
        """Start the processes saved by `corral dump` (from its .bak if it does not read)."""
        import warnings

        client = _client()
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
            _print_table(client)
        report.finish()

    @cli.command()
    @json_flag
    def kill(as_json: bool) -> None:
        """Stop every process and the daemon."""
        remote = _remote_flags(click.get_current_context().find_root()).get("address")
        running = bool(remote or os.environ.get("CORRAL_ADDRESS")) or daemon_running()
        if running:
            _client().kill_daemon()
        if as_json:
            print_json({"killed": running})
        else:
            _echo("daemon killed" if running else "no daemon is running")

    @cli.command()
    @json_flag
    def ping(as_json: bool) -> None:
        """Check the daemon answers (starting it if none runs), and which corral it runs."""
        print_ping(_client(), as_json=as_json)

    @cli.command("sendSignal")
    @click.argument("signal")
    @click.argument("target")
    @json_flag
    def send_signal(signal: str, target: str, as_json: bool) -> None:
        """Send a signal (SIGUSR2, USR2 or 12) to processes (alias: send-signal)."""
        client = _client()
        sig = int(signal) if signal.isdigit() else signal
        goal = parse_target(target)
        if isinstance(goal, int):
            infos = client.send_signal_to_process_id(goal, sig)
        else:
            infos = client.send_signal_to_process_name(sig, goal)
        if as_json:
            print_json({"signal": signal, "pm_ids": [info.pm_id for info in infos]})
            return
        _echo(f"sent {signal} to {len(infos)} processes")

    @cli.command()
    @click.option(
        "--errors", is_flag=True, help="List each plugin's recorded errors and dropped calls."
    )
    @json_flag
    def plugins(errors: bool, as_json: bool) -> None:
        """List the plugins loaded in the daemon."""
        # deferred: rich (~25 ms) loads only to draw a table
        from .cli_render import make_console, plugins_table

        loaded = _client().plugins()
        if as_json:
            print_json(loaded)
            return
        if not errors:
            make_console().print(plugins_table(loaded))
            return
        for plugin in loaded:
            for error in plugin.get("errors") or []:
                _echo(f"{plugin['name']}: {error}")
            for hook, count in (plugin.get("dropped") or {}).items():
                _echo(f"{plugin['name']}: dropped {count} {hook} calls (its queue was full)")

    @cli.command()
    def monit() -> None:
        """A live view of the processes and the selected one's logs (q quits)."""
        from .cli_monit import run_monit  # deferred: rich.live and the monit screen, only for monit

        run_monit(_client())

    cli_reconcile.add_commands(cli, _client, _print_table)
    cli_logs.add_commands(cli, _client)
    cli_stdin.add_commands(cli, _client)
    cli_import.add_commands(cli, _client)
    cli_update.add_commands(cli, _client)
    _pid_command(cli)
    cli_extra.add_commands(cli, _client)
    return cli


def _env_flag(command: Any) -> Any:
    """``--env NAME`` of restart and reload: env_NAME of a config file target (PM2's)."""
    return click.option(
        "--env", "env_name", metavar="NAME", help="With a config file: apply its env_NAME."
    )(command)


def _pid_command(cli: click.Group) -> None:
    """`corral pid [NAME]`: PM2's ``pm2 pid``, for scripts (``kill -0 $(corral pid web)``)."""

    @cli.command()
    @click.argument("name", required=False)
    @json_flag
    def pid(name: str | None, as_json: bool) -> None:
        """Print the pid of each running instance of NAME (of every app without NAME),
        one a line; nothing for a name no app has, as PM2."""
        pids = [i.pid for i in _client().list() if (name is None or i.name == name) and i.pid]
        if as_json:
            print_json(pids)
            return
        for pid in pids:
            _echo(str(pid))


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
    client = _client()
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
        _print_table(client)
    if failed:
        raise SystemExit(1)


def _apply(verb: str, targets: tuple[str, ...], flags: dict[str, Any]) -> None:
    """Run one action on each target; report every failure, then exit 1 if any."""
    client = _client()
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
        _print_table(client)
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


def _flush_rotated(client: Client, target: Any) -> dict[str, Any]:
    try:
        return client.call("logrotate_flush", target=target, all=True)
    except ProtocolError as exc:
        raise PluginError(
            "flush --all needs the plugin 'logrotate', which is not loaded in the daemon"
        ) from exc
