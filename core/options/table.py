"""The core's app options: PM2's options, each declared once with its kind, default and aliases.

What an :class:`~corral.options.schema.Option` means and how a value is checked is in
:mod:`corral.options.schema`; plugins declare theirs through the ``corral_app_options`` hook.
"""

from __future__ import annotations

from typing import Any

from corral.options.schema import Option


def _core(name: str, type: str, default: Any = None, help: str = "", **kw: Any) -> Option:
    return Option(name, type, default, help=help, plugin="core", **kw)


# fmt: off
CORE_OPTIONS: tuple[Option, ...] = (
    _core("script", "str", help="program to run: a path, a command on PATH, or a command line",
          aliases=("exec", "cmd", "command")),
    _core("name", "str", help="process name (default: the script's name without extension)"),
    _core("namespace", "str", "default", help="group of processes, usable as a target"),
    _core("cwd", "str", help="working directory (default: the caller's)"),
    _core("args", "list", (), help="arguments passed to the script"),
    _core("node_args", "list", (), help="arguments passed to the interpreter",
          aliases=("interpreter_args",)),
    _core("exec_interpreter", "str", help="interpreter ('none' runs the file itself)",
          aliases=("interpreter",)),
    _core("exec_mode", "str", help="fork or cluster (default: cluster for node with instances, "
          "else fork)", choices=("fork", "cluster")),
    _core("instances", "int", 1, help="number of copies; 'max' or 0 = one per CPU, -1 = CPUs - 1"),
    _core("listen", "str", help="address the daemon binds once and shares with every instance: "
          "host:port, :port or unix:/path"),
    _core("wait_ready", "bool", False, help="online only when the app says ready "
          "(corral.child.ready(), process.send('ready'), sd_notify READY=1)"),
    _core("listen_timeout", "ms", 3000, help="how long to wait for an instance to be ready"),
    _core("on_listen_timeout", "str", "rollback", choices=("rollback", "continue"),
          help="a reload whose new instance (wait_ready) is not ready within listen_timeout: "
          "'rollback' stops it and keeps the old one serving; 'continue' replaces the old "
          "one all the same, as PM2 does"),
    _core("shutdown_with_message", "bool", False, help="stop by sending 'shutdown' on the "
          "channel before SIGINT"),
    _core("out_file", "str", help="stdout log file", aliases=("out", "output", "out_log")),
    _core("error_file", "str", help="stderr log file",
          aliases=("error", "err", "err_file", "err_log")),
    _core("log_file", "bool_or_str", help="combined stdout+stderr log (true: default path)",
          aliases=("log",)),
    _core("disable_logs", "bool", False, help="write no log files and send no log events"),
    _core("log_type", "str", help="'json' writes one JSON object per line", choices=("json",)),
    _core("log_date_format", "str", help="date prefix for each log line (dayjs format)"),
    _core("time", "bool", False, help="prefix log lines with an ISO date"),
    _core("merge_logs", "bool", help="one log file for all instances (default: decided at start)",
          aliases=("combine_logs",)),
    _core(
        "pid_file",
        "str",
        help="pid file path: must not exist yet (corral never overwrites or deletes "
        "a file it did not create)",
        aliases=("pid",),
    ),
    _core("env", "dict", {}, help="environment variables for the app"),
    _core("filter_env", "bool_or_list", help="true: do not inherit the caller's environment; "
          "a list: drop inherited variables containing these strings"),
    _core("min_uptime", "ms", 1000, minimum=100,
          help="a run shorter than this counts as unstable ('10s', '2m', '1h' accepted)"),
    _core("max_restarts", "int", 16, minimum=0, help="unstable restarts before giving up"),
    _core("restart_delay", "ms", 0, help="wait before restarting a crashed app"),
    _core("exp_backoff_restart_delay", "ms", 0, help="first delay of an exponential backoff"),
    _core("autorestart", "bool", True, help="restart the app when it exits"),
    _core("autostart", "bool", True, help="start the app when it is added"),
    _core("stop_exit_codes", "int_list", (), help="exit codes that do not trigger a restart"),
    _core("kill_timeout", "ms", 1600, help="grace after the stop signal before SIGKILL; "
          "0 means the default, 1600 ms, as in PM2 (1 is the shortest)"),
    _core("kill_signal", "str", "SIGINT", help="stop signal (gunicorn drains on SIGTERM); "
          "a name or number"),
    _core("force", "bool", False, help="start another copy of a script already running"),
    _core("port", "int", minimum=0, help="sets PORT in the app's environment"),
    _core(
        "uid",
        "str",
        help="run as this user (a name, or a numeric id), with its groups, HOME, USER, "
        "LOGNAME and SHELL, as runuser does; its log and pid files are opened as it",
        aliases=("user",),
    ),
    _core("gid", "str", help="primary group (a name, or a numeric id); alone: the only group"),
    _core("treekill", "bool", True, help="signal the whole process tree, not just the main pid"),
    _core("instance_var", "str", "NODE_APP_INSTANCE", help="variable holding the instance index"),
    _core("increment_var", "str", help="variable incremented for each instance"),
)
# fmt: on

# the interpreter ``exec_interpreter`` defaults to, by the script's suffix
INTERPRETERS = {
    ".py": "python",
    ".js": "node",
    ".mjs": "node",
    ".cjs": "node",
    ".sh": "bash",
    ".bash": "bash",
    ".rb": "ruby",
    ".pl": "perl",
    ".php": "php",
    ".ts": "node",
}
