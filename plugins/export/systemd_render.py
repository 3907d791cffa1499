"""The systemd exporter's Renderer: the text of each unit file of one export."""

from __future__ import annotations

import os
import re
import signal
from typing import Any

from corral import OptionError

from . import ExportRequest
from .systemd_calendar import cron_expression, on_calendar
from .systemd_command import absolute, command, interpreter_pairs, working_directory
from .systemd_env import environment_lines, instance_env
from .systemd_listen import listen_stream
from .systemd_plan import AppUnits, depends_on, group_name, plan, refuse_collisions
from .systemd_quoting import description, exec_start, plain_value, seconds
from .systemd_warnings import app_warnings, restart_sec_ms

# systemd's user and group names (valid_user_group_name, relaxed), or an id
_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,30}$")


# -- durations, signals, accounts, as the unit lines take them -----------------


def _is_null(path: str) -> bool:
    """A log option that means "no file", as corral reads it: ``NULL`` or ``/dev/null``."""
    return path in ("NULL", "/dev/null")


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


# -- the unit files ---------------------------------------------------------------


class Renderer:
    """The units of one export: a file's apps, the exporter's params, the warnings."""

    def __init__(self, request: ExportRequest) -> None:
        params = request.params
        self.params = params
        self.root = os.path.abspath(params.get("app_root") or request.config.path.parent)
        self.chosen = dict(interpreter_pairs(params.get("interpreter") or ()))
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
            for name, condition in depends_on(units.app).items():
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
            self.warnings.extend(app_warnings(app, self.by_name))
            try:
                files.update(self.app_files(units))
            except OptionError as exc:  # one line naming the app and its option
                raise OptionError(f"{app.name}: {exc}", field=exc.field) from None
        files[f"{self.top}.target"] = self.top_target()
        return files

    def app_files(self, units: AppUnits) -> dict[str, str]:
        files = {}
        for index, name in enumerate(units.services):
            files[name] = self.service(units, index)
        if units.group:
            files[units.group] = self.group(units)
        if units.cron:
            files[f"{units.cron}.service"] = self.cron_service(units)
            files[f"{units.cron}.timer"] = self.cron_timer(units)
        if units.socket:
            files[units.socket] = self.socket(units)
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
            *self._logs(units, say=index == 0),
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
        for name in depends_on(units.app):
            other = self.by_name.get(name)
            if other is None:
                continue  # said by app_warnings
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
        cycle = int(options.get("min_uptime") or 0) + restart_sec_ms(options)
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
        lines = ["Restart=always", f"RestartSec={seconds(restart_sec_ms(options))}"]
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

    def _logs(self, units: AppUnits, say: bool) -> list[str]:
        """The journal, unless the app names its log files (appended to, as corral does).

        corral writes each stream to its own file (``out_file``, ``error_file``) and
        both to ``log_file``, the combined log, if given; systemd writes a stream to one
        place. A stream goes to its own file if it has one, else to the combined log, else
        to the journal (which takes the place of corral's default files). A stream whose
        own file is ``NULL`` still reaches the combined log, as under corral; one that
        has a file of its own is missing from the combined log: said if ``say`` (once
        per app, not per instance)."""
        options = units.app.options
        if options.get("disable_logs"):
            return ["StandardOutput=null", "StandardError=null"]
        cwd = working_directory(units.app, self.root)
        combined = options.get("log_file")
        if not isinstance(combined, str) or _is_null(combined):
            combined = None  # true: corral's own file, which the journal replaces
        lines = []
        for key, option, stream in (
            ("StandardOutput", "out_file", "stdout"),
            ("StandardError", "error_file", "stderr"),
        ):
            own = options.get(option)
            own = str(own) if own else None
            if own and not _is_null(own):
                target = self._log_target(own, cwd, option)
                if say and combined and target != self._log_target(combined, cwd, "log_file"):
                    self.warnings.append(
                        f"{units.app.name}: log_file {combined}: systemd writes a stream to "
                        f"one place: {stream} goes to {option} {own} only, not to the combined log"
                    )
            elif combined:
                target = self._log_target(combined, cwd, "log_file")
            elif own:
                target = "null"
            else:
                continue  # the journal
            lines.append(f"{key}={target}")
        return lines

    def _log_target(self, path: str, cwd: str, option: str) -> str:
        if _is_null(path):
            return "null"
        return "append:" + plain_value(absolute(path, cwd, option), option)

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
        expr = cron_expression(options) or ""
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
