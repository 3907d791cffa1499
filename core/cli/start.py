"""``corral start``: its flags, one per core option and one per option of a loaded
plugin, built on first use, and the command that starts scripts and config files.

The core flags are :data:`START_FLAGS`, their help taken from the declared
options; plugins are loaded (an entry-point scan) only when the command line has
a flag the core does not know, or asks for help, so a plain start stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from corral.cli import reconcile as cli_reconcile
from corral.cli import session
from corral.cli.actions import Report, records
from corral.cli.base import parse_env, parse_opts, parse_target, stop_exit_codes
from corral.cli.flags import json_flag
from corral.cli.targets import is_config
from corral.client.targets import parse_only
from corral.errors import OptionError, shorten

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
        elif kind == "structured":
            options[name] = structured(value)
        else:
            options[name] = value
    return options


def structured(text: str) -> Any:
    """A flag's ``{...}`` or ``[...]`` value, as YAML (JSON is YAML): ``{tcp: 8000}``,
    ``[db, cache]``; anything else stays the string the option's check reads."""
    if text.strip()[:1] not in ("[", "{"):
        return text
    import yaml  # deferred: only such a flag pays for it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", "") or exc).strip()
        raise OptionError(f"cannot read {shorten(text)}: {problem}", field="value") from None


METAVARS = {
    "int": "N", "ms": "MS", "bytes": "SIZE", "list": "ARGS", "int_list": "CODES",
    "any": "YAML", "dict": "YAML",
}  # fmt: skip


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
    if kind in ("bool_or_list", "bool_or_str"):
        return "optional"
    # a mapping or a list of anything (a plugin's `--health {tcp: 8000}`): parsed as YAML
    return "structured" if kind in ("any", "dict") else "value"


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
        from corral.hooks import load_plugins

        declared = load_plugins().app_options()
    else:
        # deferred: the options table, only for the flags of start
        from corral.options.table import CORE_OPTIONS

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


def add_commands(cli: click.Group) -> None:
    """Add ``start`` to ``cli``."""

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
        client = session.client()
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
                session.print_table(client)
            report.report_verdict(verdict)
        report.finish()
