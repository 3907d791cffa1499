"""``corral export systemd CONFIG``: one systemd service per app instance.

As ``honcho export systemd`` does: an app of one instance is ``<name>.service``;
an app of n instances is ``<name>-0.service`` .. ``<name>-<n-1>.service`` (the
number is the instance's ``NODE_APP_INSTANCE``) grouped by ``<name>.target``;
``corral-<file>.target`` wants every app (``systemctl enable --now`` it). A
``cron_restart`` is a ``<name>-cron.timer`` starting ``<name>-cron.service``,
which runs ``systemctl restart`` on the app's units. The option by option
mapping, and why, is in docs/plugins/export-systemd.md; every option set
that has no systemd equivalent is said in a warning naming the app.

Paths: systemd needs absolute ones. A relative ``cwd``, script or interpreter
path starts from ``--app-root`` (the directory ``corral start`` would run in
on the target; default: the config file's). An interpreter or a command given
by its bare name (``node``, ``python3``, ``npm``) stays bare: systemd 239 and
later look it up in their fixed search path (/usr/local/sbin:/usr/local/bin:
/usr/sbin:/usr/bin); ``--interpreter node=/opt/node/bin/node`` names another.

Quoting: every value is written so systemd reads back what the option held
(``%`` as ``%%``; in ``ExecStart=`` ``$`` as ``$$``; words with blanks, quotes,
backslashes or control characters double-quoted with C escapes). What no unit
line can hold (a newline in a path or a user name) is refused, naming the field.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import corral
from corral import ConfigError, OptionError
from corral.api import is_secret

from . import Exporter, ExportRequest, ExportResult

# the interpreter corral runs a script under, by its suffix (corral's own table:
# core/options/table.py INTERPRETERS; corral runs .py under its own python, python3 here)
INTERPRETERS = {
    ".py": "python3",
    ".js": "node",
    ".mjs": "node",
    ".cjs": "node",
    ".ts": "node",
    ".sh": "bash",
    ".bash": "bash",
    ".rb": "ruby",
    ".pl": "perl",
    ".php": "php",
}
SECRETS_DIR = "/etc/corral"  # where the withheld secret variables are expected
UNIT_NAME_MAX = 255 - len(".service") - 8  # systemd's limit, with room for "-<n>"/"-cron"

# options this exporter maps (or that only mean something through one it maps)
MAPPED = frozenset(
    (
        "script name cwd args node_args exec_interpreter exec_mode instances env filter_env "
        "autorestart autostart stop_exit_codes restart_delay exp_backoff_restart_delay "
        "max_restarts min_uptime kill_signal kill_timeout treekill wait_ready listen_timeout "
        "on_listen_timeout uid gid port instance_var increment_var out_file error_file "
        "log_file disable_logs merge_logs watchdog max_memory_restart memory_interval "
        "memory_max cpu_max pids_max depends_on cron_restart cron_tz watch ignore_watch listen "
        "watch_delay watch_options"
    ).split()
)
# an unmapped option at one of these values is not set (other options: None, False, empty)
DEFAULTS: dict[str, Any] = {"namespace": "default"}
# systemd's Environment= takes only these names
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# systemd's user and group names (valid_user_group_name, relaxed), or an id
_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}$")
# a word of ExecStart= that needs no quotes
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


# -- quoting ---------------------------------------------------------------------


def _c_escape(text: str) -> str:
    """``text`` inside double quotes, C-escaped as systemd unescapes it (the file reader
    refuses a NUL byte, which no unit can hold)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def exec_word(word: str) -> str:
    """One word of ``ExecStart=``: ``%`` and ``$`` doubled (systemd expands both there),
    quoted when it holds anything but plain characters."""
    word = word.replace("%", "%%").replace("$", "$$")
    return word if _PLAIN_WORD.match(word) else _c_escape(word)


def env_assignment(name: str, value: str) -> str:
    """One ``Environment=`` word: quoted, ``%`` doubled; ``$`` is literal there."""
    return _c_escape(f"{name}={value}".replace("%", "%%"))


def plain_value(value: str, what: str) -> str:
    """A value systemd takes to the end of the line (a path, a description): ``%``
    doubled; a line break, or an end systemd would strip, is refused naming ``what``."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip():
        raise OptionError(
            f"{what} {value!r} has a control character or blanks at an end, which a "
            "unit file cannot hold: rename it",
            field=what,
        )
    if value.endswith("\\"):
        raise OptionError(
            f"{what} {value!r} ends in a backslash, which a unit file reads as a "
            "line continuation: rename it",
            field=what,
        )
    return value.replace("%", "%%")


def description(text: str) -> str:
    """A ``Description=``: control characters and backslashes shown as ``?``."""
    shown = "".join("?" if ord(c) < 32 or ord(c) == 127 or c == "\\" else c for c in text)
    return shown.strip().replace("%", "%%") or "?"


# -- names -----------------------------------------------------------------------


def unit_base(name: str, prefix: str = "") -> str:
    """The unit name an app gets: each run of characters other than letters, digits,
    ``_``, ``.`` and ``-`` becomes one ``-`` (``my app/v2`` -> ``my-app-v2``)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix + name).strip("-._")
    if not base:
        raise OptionError(
            f"app name {name!r} has no letter or digit to name a unit after: set the option name",
            field="name",
        )
    if len(base) > UNIT_NAME_MAX:
        raise OptionError(
            f"app name {name[:40]!r}... is longer than a unit name can be "
            f"({UNIT_NAME_MAX} characters): shorten the option name",
            field="name",
        )
    return base


def group_name(path: Path, prefix: str = "") -> str:
    """The target grouping every app of the file: ``corral-<file name up to its first .>``."""
    return unit_base("corral-" + path.name.split(".")[0], prefix)


# -- the plan: which units each app gets ------------------------------------------


@dataclass
class AppUnits:
    """One app of the file and the units it becomes."""

    app: Any  # a PortableApp
    base: str
    count: int
    services: list[str] = field(default_factory=list)
    group: str | None = None  # <base>.target when there are several instances
    cron: str | None = None  # <base>-cron, its .timer and .service
    socket: str | None = None  # <base>.socket, for the listen option
    oneshot: bool = False  # another app waits for it to complete

    @property
    def handle(self) -> str:
        """The unit another app depends on: the group of instances, or the one service."""
        return self.group or self.services[0]


def instance_count(app: Any, cpus: int | None, warnings: list[str]) -> int:
    """PM2's rule (0 or "max": one per CPU; -n: CPUs - n; at least 1), with the target's
    CPU count from ``--cpus``, else this machine's, said in a warning."""
    value = app.instances
    count = 0 if value == "max" else int(value)
    if count > 0:
        return count
    if cpus is None:
        cpus = os.cpu_count() or 1
        warnings.append(
            f"{app.name}: instances {value} is per CPU of the target: exported {cpus} "
            "for this machine's CPUs; give --cpus N for the target's"
        )
    return max(cpus + count if count < 0 else cpus, 1)


def plan(apps: list[Any], params: dict[str, Any], warnings: list[str]) -> list[AppUnits]:
    """Each app's unit names; two units of one name are refused, naming both apps."""
    prefix = params.get("prefix") or ""
    plans = []
    for app in apps:
        base = unit_base(app.name, prefix)
        if base != prefix + app.name:
            warnings.append(f"{app.name}: unit names are {base}: a unit name cannot hold it")
        units = AppUnits(app, base, instance_count(app, params.get("cpus"), warnings))
        if units.count == 1:
            units.services = [f"{base}.service"]
        else:
            units.services = [f"{base}-{i}.service" for i in range(units.count)]
            units.group = f"{base}.target"
        if _cron_expression(app.options):
            units.cron = f"{base}-cron"
        if listen_stream(app.options):
            units.socket = f"{base}.socket"
        plans.append(units)
    return plans


def refuse_collisions(plans: list[AppUnits], top: str) -> None:
    """ConfigError when two apps, or an app and the file's target, make one unit."""
    owners: dict[str, int] = {}
    for index, units in enumerate(plans):
        names = list(units.services)
        if units.group:
            names.append(units.group)
        if units.cron:
            names += [f"{units.cron}.service", f"{units.cron}.timer"]
        if units.socket:
            names.append(units.socket)
        for name in names:
            if name == top:
                raise ConfigError(
                    f"app {units.app.name!r} would make the unit {name}, the target of the "
                    "whole file: rename the app (the option name), or use --prefix"
                )
            other = owners.setdefault(name, index)
            if other != index:
                raise ConfigError(
                    f"apps {plans[other].app.name!r} and {units.app.name!r} would both make "
                    f"the unit {name}: rename one (the option name)"
                )


# -- listen -> a .socket unit ----------------------------------------------------------


def listen_stream(options: dict[str, Any]) -> str | None:
    """The ``listen`` address as ``ListenStream=`` takes it (``8080``, ``host:8080``, a
    socket path), or None: no listen, or one systemd cannot hold for the app. A node app
    binds its own port under systemd (corral's listen shim is not there), so it gets no
    socket unit: its warning says so."""
    listen = str(options.get("listen") or "").strip()
    if not listen or _is_node_app(options):
        return None
    if listen.startswith("unix:"):
        path = listen[5:]
        return plain_value(_absolute(path, "/", "listen"), "listen") if path[:1] == "/" else None
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return None
    host = host.strip("[]")
    if not host:
        return port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_port(options: dict[str, Any]) -> str | None:
    """The port corral puts in PORT for a tcp ``listen``."""
    stream = listen_stream(options)
    if stream is None or stream.startswith("/"):
        return None
    return stream.rpartition(":")[2]


# -- ExecStart ---------------------------------------------------------------------


def _absolute(path: str, base: str, what: str) -> str:
    """``path`` from ``base``; a ``~`` is refused: whose home it is on the target, and
    where, is not known here."""
    if path.startswith("~"):
        raise OptionError(
            f"{what} {path!r} starts with ~, a home directory this machine cannot know for "
            f"the target: give {what} as an absolute path",
            field=what,
        )
    return os.path.normpath(str(PurePosixPath(base) / path))


def working_directory(app: Any, root: str) -> str:
    """The app's cwd on the target: the option, relative ones from the app root."""
    return _absolute(app.options.get("cwd") or ".", root, "cwd")


def _words(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(item) for item in value]


def _interpreter(name: str, root: str, chosen: dict[str, str]) -> str:
    """The interpreter as the unit runs it: ``--interpreter`` first; a path from the app
    root (as corral takes it from the caller's cwd); a bare name for systemd's search."""
    if name in ("python", "python3"):
        # corral runs a .py under its own python: python3 on the target
        name = chosen.get(name) or chosen.get("python3") or "python3"
    name = chosen.get(name, name)
    if os.sep in name:
        return _absolute(name, root, "interpreter")
    return name


def command(app: Any, root: str, chosen: dict[str, str]) -> list[str]:
    """The argv corral would spawn for ``app`` (core/supervisor/spawn.py), on the target."""
    options = app.options
    script = str(options["script"])
    args = _words(options.get("args"))
    interpreter = options.get("exec_interpreter")
    if " " in script.strip() and not interpreter:
        # a command line: corral runs it with bash -c, the args as "$@"
        if not args:
            return ["bash", "-c", script]
        return ["bash", "-c", script + ' "$@"', script.split()[0], *args]
    cwd = working_directory(app, root)
    if interpreter is None:
        interpreter = INTERPRETERS.get(PurePosixPath(script).suffix.lower())
    if "/" in script or interpreter not in (None, "none"):
        script = _absolute(script, cwd, "script")  # a file, from the app's cwd
    if interpreter in (None, "none"):
        return [script, *args]
    runner = _interpreter(str(interpreter), root, chosen)
    return [runner, *_words(options.get("node_args")), script, *args]


def exec_start(argv: list[str]) -> str:
    """``ExecStart=``'s value; an executable systemd would read a prefix in is refused."""
    first = argv[0]
    if first[:1] in "@-:+!" or not first:
        raise OptionError(
            f"script {first!r} starts with {first[:1]!r}, which systemd reads as an "
            f"ExecStart= prefix: write it as ./{first}, or set the option interpreter",
            field="script",
        )
    return " ".join(exec_word(word) for word in argv)


# -- durations, signals, accounts ------------------------------------------------------


def seconds(ms: int) -> str:
    """A duration in ms as systemd reads it: ``5s``, ``1600ms``."""
    ms = int(ms)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def signal_name(value: Any) -> str:
    """``kill_signal`` as systemd's ``KillSignal=`` takes it: ``SIGINT``."""
    text = str(value).strip().upper()
    if text.isdigit():
        return signal.Signals(int(text)).name
    return text if text.startswith("SIG") else "SIG" + text


def account(value: Any, what: str) -> str:
    """A ``uid``/``gid`` for ``User=``/``Group=``: a name systemd takes, or an id."""
    text = str(value)
    if not _ACCOUNT.match(text):
        raise OptionError(
            f"{what} {text!r} is not a user or group name systemd takes (letters, digits, "
            "_ . -, at most 31): fix the option " + what,
            field=what,
        )
    return text


# -- environment ---------------------------------------------------------------------


def interpreter_of(options: dict[str, Any]) -> str:
    """The interpreter corral picks for the app (its name), or "none"."""
    script = str(options["script"]).strip()
    if " " in script and not options.get("exec_interpreter"):
        return "bash"
    chosen = options.get("exec_interpreter") or INTERPRETERS.get(
        PurePosixPath(script).suffix.lower()
    )
    return str(chosen or "none")


def instance_env(app: Any, index: int) -> dict[str, str]:
    """The env corral gives an instance (ManagedProcess.child_env): the app's env, the
    instance index, increment_var, PORT and PYTHONUNBUFFERED."""
    options = app.options
    env = dict(app.env)
    env[str(options.get("instance_var") or "NODE_APP_INSTANCE")] = str(index)
    increment = options.get("increment_var")
    if increment:
        try:
            env[str(increment)] = str(int(app.env.get(increment, 0) or 0) + index)
        except ValueError:
            raise OptionError(
                f"increment_var {increment} must name a variable holding an integer, "
                f"got {app.env[increment]!r}: fix the env",
                field="increment_var",
            ) from None
    port = listen_port(options) or options.get("port")
    if port is not None:
        env["PORT"] = str(port)
    env["CORRAL_INSTANCE"] = str(index)
    if "python" in PurePosixPath(interpreter_of(options)).name:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def environment_lines(
    units: AppUnits, env: dict[str, str], include_secrets: bool, warnings: list[str] | None
) -> list[str]:
    """``Environment=`` lines, one variable each; a secret-looking one withheld for an
    ``EnvironmentFile=``. What is not written is said in ``warnings`` (None: said already,
    for another instance of the app)."""
    lines, withheld, bad = [], [], []
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            bad.append(name)
        elif not include_secrets and is_secret(name, value):
            withheld.append(name)
        else:
            lines.append(f"Environment={env_assignment(name, value)}")
    app_name = units.app.name
    if bad and warnings is not None:
        warnings.append(
            f"{app_name}: env {', '.join(sorted(bad))}: systemd takes only names of letters, "
            "digits and _ (not starting with a digit): not exported"
        )
    if withheld:
        path = f"{SECRETS_DIR}/{units.base}.env"
        lines.append(f"EnvironmentFile={plain_value(path, 'name')}")
        if warnings is not None:
            warnings.append(
                f"{app_name}: env {', '.join(sorted(withheld))}: secret by name or value: not "
                f"written into the unit; put it in {path} (mode 0600), or pass --include-secrets"
            )
    return lines


# -- cron -> OnCalendar ------------------------------------------------------------------


def _cron_expression(options: dict[str, Any]) -> str | None:
    expr = str(options.get("cron_restart") or "").strip()
    return None if expr in ("", "0") else expr


def _field(values: list[Any], days: bool = False) -> str:
    """One croniter field as a calendar component: ``*``, or a list with ranges ``a..b``."""
    if values == ["*"]:
        return "*"
    numbers = sorted({int(v) % 7 if days else int(v) for v in values})
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    shown = []
    for start, end in runs:
        first, last = (_DAYS[start], _DAYS[end]) if days else (f"{start:02d}", f"{end:02d}")
        shown.append(first if start == end else f"{first}..{last}")
    return ",".join(shown)


def on_calendar(expr: str, tz: str | None) -> list[str]:
    """``OnCalendar=`` values for a cron expression (croner's 5 fields, or 6 with the
    seconds first, or a nickname). cron fires when the day of month *or* the day of
    week matches if both are given: two values, as systemd ANDs them in one."""
    # deferred: croniter, corral's dependency, is needed only for an app with a cron
    from croniter import croniter

    fields = expr.split()
    parsed = croniter(expr, second_at_beginning=len(fields) == 6)
    if getattr(parsed, "nth_weekday_of_month", None):
        raise OptionError(
            f"cron_restart {expr!r}: a weekday of the month (#) has no systemd calendar "
            "equivalent: use days of the month",
            field="cron_restart",
        )
    expanded = parsed.expanded
    if len(expanded) == 5:
        expanded = [*expanded, [0]]
    minute, hour, dom, month, dow, second = expanded
    if dom != ["*"] and "l" in [str(v).lower() for v in dom]:
        day = "~01"  # the last day of the month
        date = f"*-{_field(month)}{day}"
    else:
        date = f"*-{_field(month)}-{_field(dom)}"
    clock = f"{_field(hour)}:{_field(minute)}:{_field(second)}"
    zone = f" {tz}" if tz else ""
    if dow == ["*"]:
        return [f"{date} {clock}{zone}"]
    weekdays = _field(dow, days=True)
    if dom == ["*"]:
        return [f"{weekdays} {date} {clock}{zone}"]
    every_day = f"*-{_field(month)}-*"
    return [f"{date} {clock}{zone}", f"{weekdays} {every_day} {clock}{zone}"]


# -- rendering -------------------------------------------------------------------------


class Renderer:
    """The units of one export: a file's apps, the exporter's params, the warnings."""

    def __init__(self, request: ExportRequest) -> None:
        params = request.params
        self.params = params
        self.root = os.path.abspath(params.get("app_root") or request.config.path.parent)
        self.chosen = dict(_interpreter_pairs(params.get("interpreter") or ()))
        self.include_secrets = bool(params.get("include_secrets"))
        self.warnings: list[str] = []
        self.plans = plan(request.config.apps, params, self.warnings)
        self.top = group_name(request.config.path, params.get("prefix") or "")
        refuse_collisions(self.plans, f"{self.top}.target")
        self.by_name = {units.app.name: units for units in self.plans}
        self._mark_oneshots()

    def _mark_oneshots(self) -> None:
        """An app another waits to complete runs as Type=oneshot (After= then waits for
        its exit); one that restarts cannot."""
        for units in self.plans:
            for name, condition in _depends(units.app).items():
                other = self.by_name.get(name)
                if condition != "completed" or other is None:
                    continue
                if other.app.options.get("autorestart"):
                    self.warnings.append(
                        f"{units.app.name}: depends_on {name}: completed needs {name} to be a "
                        "job (autorestart: false): exported as started"
                    )
                else:
                    other.oneshot = True

    def files(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for units in self.plans:
            app = units.app
            for message in app.warnings:
                self.warnings.append(f"{app.name}: {message}")
            self._warn_unmapped(app)
            for index, name in enumerate(units.services):
                files[name] = self.service(units, index)
            if units.group:
                files[units.group] = self.group(units)
            if units.cron:
                files[f"{units.cron}.service"] = self.cron_service(units)
                files[f"{units.cron}.timer"] = self.cron_timer(units)
            if units.socket:
                files[units.socket] = self.socket(units)
        files[f"{self.top}.target"] = self.top_target()
        return files

    # -- one service -------------------------------------------------------------

    def service(self, units: AppUnits, index: int) -> str:
        app, options = units.app, units.app.options
        argv = command(app, self.root, self.chosen)
        head = [
            "# Written by `corral export systemd`.",
            "[Unit]",
            f"Description={description(self._title(units, index))}",
            f"PartOf={units.group or self.top + '.target'}",
            *self._ordering(units),
            *self._start_limits(units),
            *([f"Requires={units.socket}"] if units.socket else []),
            "",
            "[Service]",
            *self._type(units),
            *self._account(units),
            f"WorkingDirectory={plain_value(working_directory(app, self.root), 'cwd')}",
            *environment_lines(
                units,
                instance_env(app, index),
                self.include_secrets,
                self.warnings if index == 0 else None,
            ),
            *([f"Sockets={units.socket}"] if units.socket else []),
            f"ExecStart={exec_start(argv)}",
            *self._restart(units),
            f"KillSignal={signal_name(options.get('kill_signal') or 'SIGINT')}",
            f"TimeoutStopSec={seconds(options.get('kill_timeout') or 1600)}",
            *([] if options.get("treekill", True) else ["KillMode=process"]),
            *self._limits(units),
            *self._logs(units),
        ]
        return "\n".join(head) + "\n"

    def _title(self, units: AppUnits, index: int) -> str:
        if units.count == 1:
            return f"{units.app.name} (corral app)"
        return f"{units.app.name} instance {index} of {units.count} (corral app)"

    def _ordering(self, units: AppUnits) -> list[str]:
        """After= network.target and each dependency; Wants= a started one, Requires=
        one that must complete."""
        after, wants, requires = ["network.target"], [], []
        if units.socket:
            after.append(units.socket)
        for name in _depends(units.app):
            other = self.by_name.get(name)
            if other is None:
                continue  # said by _warn_depends
            after.append(other.handle)
            (requires if other.oneshot else wants).append(other.handle)
        lines = [f"After={' '.join(after)}"]
        if wants:
            lines.append(f"Wants={' '.join(wants)}")
        if requires:
            lines.append(f"Requires={' '.join(requires)}")
        return lines

    def _start_limits(self, units: AppUnits) -> list[str]:
        """corral gives up after max_restarts runs shorter than min_uptime in a row:
        systemd after StartLimitBurst starts within StartLimitIntervalSec, here
        max_restarts + 1 starts within that many (min_uptime + restart_delay)."""
        options = units.app.options
        if not options.get("autorestart") or units.oneshot:
            return []
        burst = int(options.get("max_restarts") or 0) + 1
        cycle = int(options.get("min_uptime") or 0) + int(options.get("restart_delay") or 0)
        return [f"StartLimitIntervalSec={seconds(burst * cycle)}", f"StartLimitBurst={burst}"]

    def _type(self, units: AppUnits) -> list[str]:
        options = units.app.options
        if units.oneshot:
            # active once it exited 0: a restart of what waited for it does not rerun it
            lines = ["Type=oneshot", "RemainAfterExit=yes"]
        elif options.get("wait_ready"):
            lines = ["Type=notify"]
        else:
            lines = ["Type=simple"]
        if options.get("wait_ready") and not units.oneshot:
            lines.append(f"TimeoutStartSec={seconds(options.get('listen_timeout') or 3000)}")
        if options.get("watchdog"):
            lines.append(f"WatchdogSec={seconds(options['watchdog'])}")
        if options.get("watchdog") or options.get("wait_ready"):
            # corral takes READY=1 and WATCHDOG=1 from any process of the app's tree
            lines.append("NotifyAccess=all")
        return lines

    def _account(self, units: AppUnits) -> list[str]:
        options = units.app.options
        user = options.get("uid") or self.params.get("user")
        lines = []
        if user:
            lines.append(f"User={account(user, 'uid')}")
        if options.get("gid"):
            lines.append(f"Group={account(options['gid'], 'gid')}")
        return lines

    def _restart(self, units: AppUnits) -> list[str]:
        options = units.app.options
        if not options.get("autorestart") or units.oneshot:
            return ["Restart=no"]
        delay = options.get("restart_delay") or options.get("exp_backoff_restart_delay") or 0
        lines = ["Restart=always", f"RestartSec={seconds(delay)}"]
        codes = options.get("stop_exit_codes") or ()
        if codes:
            lines.append(f"RestartPreventExitStatus={' '.join(str(c) for c in codes)}")
        return lines

    def _limits(self, units: AppUnits) -> list[str]:
        options = units.app.options
        memory = [v for v in (options.get("memory_max"), options.get("max_memory_restart")) if v]
        lines = []
        if memory:
            lines.append(f"MemoryMax={min(memory)}")
        if options.get("cpu_max"):
            lines.append(f"CPUQuota={options['cpu_max']}")
        if options.get("pids_max"):
            lines.append(f"TasksMax={options['pids_max']}")
        return lines

    def _logs(self, units: AppUnits) -> list[str]:
        """The journal, unless the app names its log files (appended to, as corral does)."""
        options = units.app.options
        if options.get("disable_logs"):
            return ["StandardOutput=null", "StandardError=null"]
        cwd = working_directory(units.app, self.root)
        combined = options.get("log_file")
        out, err = options.get("out_file"), options.get("error_file")
        if isinstance(combined, str):
            out = err = combined
        return [
            f"{key}={self._log_target(path, cwd)}"
            for key, path in (("StandardOutput", out), ("StandardError", err))
            if path
        ]

    def _log_target(self, path: str, cwd: str) -> str:
        if path in ("NULL", "/dev/null"):
            return "null"
        return "append:" + plain_value(_absolute(path, cwd, "out_file"), "out_file")

    # -- the other units ---------------------------------------------------------

    def group(self, units: AppUnits) -> str:
        wanted = [] if not units.app.options.get("autostart", True) else units.services
        lines = [
            "# Written by `corral export systemd`.",
            "[Unit]",
            f"Description={description(units.app.name)}: {units.count} instances (corral app)",
            f"PartOf={self.top}.target",
            # a target is ordered after what it is PartOf unless told otherwise: a cycle
            # with the top target, which is after this one (it wants it)
            f"Before={self.top}.target",
        ]
        if wanted:
            lines.append(f"Wants={' '.join(wanted)}")
        return "\n".join(lines) + "\n"

    def top_target(self) -> str:
        wanted = []
        for units in self.plans:
            if units.app.options.get("autostart", True):
                wanted.append(units.handle)
            if units.cron:
                wanted.append(f"{units.cron}.timer")
        lines = [
            "# Written by `corral export systemd`; `systemctl enable --now` it.",
            "[Unit]",
            f"Description={description(self.top)} (corral apps)",
            *([f"Wants={' '.join(wanted)}"] if wanted else []),
            "",
            "[Install]",
            "WantedBy=multi-user.target",
        ]
        return "\n".join(lines) + "\n"

    def socket(self, units: AppUnits) -> str:
        """The socket corral's daemon would bind once for every instance: each gets it
        as fd 3 with LISTEN_FDS (corral.child.listen_socket() reads it)."""
        options = units.app.options
        lines = [
            "# Written by `corral export systemd`: the app's listen.",
            "[Unit]",
            f"Description={description(units.app.name)}: listening socket (corral app)",
            f"PartOf={self.top}.target",
            "",
            "[Socket]",
            f"ListenStream={listen_stream(options)}",
        ]
        if units.group:
            # the unit a connection starts while none runs: each instance holds the socket
            lines.append(f"Service={units.services[0]}")
        user = options.get("uid") or self.params.get("user")
        if user and str(listen_stream(options)).startswith("/"):
            lines.append(f"SocketUser={account(user, 'uid')}")
        return "\n".join(lines) + "\n"

    def cron_service(self, units: AppUnits) -> str:
        restart = ["systemctl", "restart", *units.services]
        return (
            "# Written by `corral export systemd`: the app's cron_restart.\n"
            "[Unit]\n"
            f"Description={description(units.app.name)}: cron restart (corral app)\n"
            "\n"
            "[Service]\n"
            "Type=oneshot\n"
            f"ExecStart={exec_start(restart)}\n"
        )

    def cron_timer(self, units: AppUnits) -> str:
        options = units.app.options
        expr = _cron_expression(options) or ""
        calendars = on_calendar(expr, options.get("cron_tz"))
        lines = [
            f"# Written by `corral export systemd`: cron_restart {description(expr)}",
            "[Unit]",
            f"Description={description(units.app.name)}: cron restart timer (corral app)",
            f"PartOf={self.top}.target",
            "",
            "[Timer]",
            *(f"OnCalendar={calendar}" for calendar in calendars),
            "AccuracySec=1s",  # corral ticks on the second; systemd's default is a minute
        ]
        return "\n".join(lines) + "\n"

    # -- warnings -------------------------------------------------------------------

    def _warn_unmapped(self, app: Any) -> None:
        """One warning per option set that no line maps, and per mapping that differs."""
        options = app.options
        for key in sorted(options):
            value = options[key]
            if key in MAPPED or key.startswith("env_") or not _is_set(key, value):
                continue
            self.warnings.append(f"{app.name}: {key} has no systemd equivalent: not exported")
        for message in _approximations(app, self.by_name[app.name]):
            self.warnings.append(f"{app.name}: {message}")
        self._warn_depends(app)

    def _warn_depends(self, app: Any) -> None:
        for name, condition in _depends(app).items():
            other = self.by_name.get(name)
            if other is None:
                self.warnings.append(
                    f"{app.name}: depends_on {name}: not an app of this file: not exported"
                )
            elif condition == "healthy" and not other.app.options.get("wait_ready"):
                self.warnings.append(
                    f"{app.name}: depends_on {name}: healthy is exported as started "
                    f"({name} has no wait_ready, and health checks have no systemd equivalent)"
                )


def _is_set(key: str, value: Any) -> bool:
    if key in DEFAULTS:
        return value != DEFAULTS[key]
    return value not in (None, False, "", 0, [], (), {})


def _depends(app: Any) -> dict[str, str]:
    value = app.options.get("depends_on") or {}
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return dict.fromkeys((str(v) for v in value), "started")
    return {str(k): str(v) for k, v in value.items()}


def _approximations(app: Any, units: AppUnits) -> list[str]:
    """What is exported with other semantics than corral's, or not at all, said once."""
    options = app.options
    notes = []
    if options.get("watch"):
        notes.append("watch has no systemd equivalent (.path units do not recurse): not exported")
    if options.get("listen") and not units.socket:
        notes.append(
            f"listen {options['listen']}: no socket unit (a node app binds its own port "
            "under systemd, without corral's shim; a port 0 or a relative path cannot be "
            "one): not exported"
        )
    if options.get("exec_mode") == "cluster" and units.count > 1:
        notes.append(
            "cluster mode's shared port has no systemd equivalent: each instance binds its "
            "own; give them distinct ports (increment_var: PORT) or SO_REUSEPORT"
        )
    if options.get("max_memory_restart") and (
        not options.get("memory_max") or options["max_memory_restart"] < options["memory_max"]
    ):
        notes.append(
            "max_memory_restart is exported as MemoryMax=: past it the kernel kills the app "
            "(SIGKILL, no graceful stop) and Restart= starts it again"
        )
    if options.get("exp_backoff_restart_delay") and not options.get("restart_delay"):
        notes.append(
            "exp_backoff_restart_delay: systemd < 254 has no backoff: exported as a fixed "
            "RestartSec= of its first delay"
        )
    if options.get("wait_ready") and _is_node_app(options):
        notes.append(
            "wait_ready: under systemd a node app says ready with sd_notify READY=1 "
            "(process.send('ready') needs corral's channel)"
        )
    if options.get("watchdog") and _is_node_app(options):
        notes.append(
            "watchdog: under systemd a node app beats with sd_notify WATCHDOG=1 "
            "(process.send({type: 'corral:notify'}) needs corral's channel)"
        )
    if _is_bare_command(options):
        notes.append(
            f"script {options['script']} is taken as a command on systemd's search path "
            "(/usr/local/bin, /usr/bin, ...): write ./" + str(options["script"]) + " for a file "
            "of the cwd"
        )
    if options.get("on_listen_timeout") not in (None, "rollback") and options.get("wait_ready"):
        notes.append("on_listen_timeout has no systemd equivalent: not exported")
    if units.cron and not options.get("autorestart") and units.oneshot:
        notes.append("cron_restart of a job another app waits for: restarted by its timer")
    return notes


def _is_bare_command(options: dict[str, Any]) -> bool:
    """A script named with no path and no suffix corral knows: a command, not a file."""
    script = str(options["script"]).strip()
    if " " in script or "/" in script or options.get("exec_interpreter") not in (None, "none"):
        return False
    return PurePosixPath(script).suffix.lower() not in INTERPRETERS


def _is_node_app(options: dict[str, Any]) -> bool:
    interpreter = str(options.get("exec_interpreter") or "")
    if interpreter:
        return PurePosixPath(interpreter.split()[0]).name.startswith(("node", "nodejs", "bun"))
    return str(options["script"]).endswith((".js", ".cjs", ".mjs", ".ts"))


def _interpreter_pairs(values: Any) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, path = str(value).partition("=")
        if not sep or not name or not path:
            raise OptionError(
                f"--interpreter {value!r}: give NAME=PATH, e.g. node=/usr/local/bin/node",
                field="--interpreter",
            )
        pairs.append((name, path))
    return pairs


def render(request: ExportRequest) -> ExportResult:
    """The units of ``request.config``'s apps, and a warning per option not mapped."""
    renderer = Renderer(request)
    files = renderer.files()
    return ExportResult(files=files, warnings=renderer.warnings)


def params() -> list[Any]:
    """The exporter's options: few, each for something the file cannot say."""
    import click  # deferred: click loads in the CLI only

    return [
        click.Option(
            ["--app-root"],
            metavar="DIR",
            help="Where `corral start` would run on the target: relative cwd, script and "
            "interpreter paths start from it (default: the config file's directory).",
        ),
        click.Option(["--user"], metavar="NAME", help="User= for apps that set no uid."),
        click.Option(["--prefix"], default="", metavar="TEXT", help="Prefix every unit name."),
        click.Option(
            ["--cpus"],
            type=click.IntRange(min=1),
            metavar="N",
            help="The target's CPU count, for instances max, 0 or -n (default: this machine's).",
        ),
        click.Option(
            ["--interpreter"],
            multiple=True,
            metavar="NAME=PATH",
            help="Run NAME (node, python3, ...) as PATH on the target; repeatable.",
        ),
        click.Option(
            ["--include-secrets"],
            is_flag=True,
            help="Write secret-looking env values into the units (default: an EnvironmentFile).",
        ),
    ]


@corral.hookimpl
def corral_exporters() -> list[Any]:
    return [
        Exporter(
            name="systemd",
            help="One systemd service per app instance, a target per app and one for all.",
            render=render,
            params=params(),
        )
    ]
