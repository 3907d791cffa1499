"""From the options a caller sent to an app ready to run: validated, resolved, counted.

Everything here can fail with a clear error, and nothing here has side
effects, so a batch of apps is prepared in full before any of them starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.daemon import limits
from corral.datefmt import date_formatter
from corral.errors import OptionError, shorten
from corral.options.address import parse_address
from corral.options.schema import OptionSchema
from corral.options.secrets import mask
from corral.supervisor import credentials
from corral.supervisor.spawn import (
    check_executable,
    filter_environment,
    is_node,
    merge_env,
    resolve_interpreter,
    resolve_script,
)


@dataclass
class PreparedApp:
    """A validated app, ready to become ``count`` processes."""

    name: str
    options: dict[str, Any]
    env: dict[str, str]
    script: str
    interpreter: str
    is_command: bool
    count: int
    warnings: list[str] = field(default_factory=list)
    named: bool = False  # a name was given: the name is its identity, else its script is


def instance_count(value: Any) -> int:
    """PM2's rule: 0 (or 'max') = CPU count, negative n = CPU count + n, at least 1."""
    count = int(value if value is not None else 1)
    cpus = os.cpu_count() or 1
    if count == 0:
        count = cpus
    elif count < 0:
        count = cpus + count
    return max(count, 1)


_PATH_OPTIONS = ("out_file", "error_file", "log_file", "pid_file")
_NULL_PATHS = ("NULL", "/dev/null")


def check_fd_budget(count: int) -> None:
    """``count`` new instances must fit the daemon's limits (corral.daemon.limits)."""
    limits.check_room(count)


def check_account(options: dict[str, Any]) -> None:
    """The uid/gid resolve as they will at spawn: a name that exists, a valid id,
    a gid with a uid that has no passwd entry (one-line OptionError naming the field)."""
    credentials.resolve(options)


def check_name(name: str) -> None:
    """A new app's name must not shadow a target: ``all``, or a pm_id (all digits).

    PM2 accepts both, and then ``pm2 stop 5`` cannot reach an app named 5 by
    its name (Unitech/pm2#1937); corral refuses them.
    """
    if name == "all":
        raise OptionError(
            "name 'all' is reserved: as a target it means every app; choose another name",
            field="name",
        )
    if not name.isprintable():  # ESC, BEL, newline, bidi controls: `ls` prints names raw
        raise OptionError(
            f"name {shorten(name)} has a control or format character: `corral ls` would "
            "send it to the terminal; choose a name of printable characters (--name)",
            field="name",
        )
    if name.isascii() and name.isdigit():
        raise OptionError(
            f"name {name!r} is all digits, so as a target it would mean pm_id {int(name)}: "
            f"choose a name with a letter, e.g. 'app-{name}' (--name)",
            field="name",
        )


def check_env_names(options: dict[str, Any]) -> None:
    named = [(key, [options[key]]) for key in ("instance_var", "increment_var") if options.get(key)]
    for key, value in options.items():
        if (key == "env" or key.startswith("env_")) and isinstance(value, Mapping):
            named.append((key, list(value)))
    for key, names in named:
        for name in names:
            if not name or "=" in name:
                raise OptionError(
                    f"{key}: {shorten(name)} cannot be an environment variable name: "
                    "it must be non-empty and without '='",
                    field=key,
                )


def check_increment_var(options: dict[str, Any], env: dict[str, str]) -> None:
    name = options.get("increment_var")
    if not name:
        return
    try:
        int(env.get(name) or 0)  # as the child's environment will read it
    except ValueError:
        raise OptionError(
            f"increment_var {shorten(name)} must name a variable holding an integer, "
            f"but {name}={shorten(mask(name, env[name]))}",
            field="increment_var",
        ) from None


def _check_paths(options: dict[str, Any], cwd: Path) -> None:
    """A log or pid file must be a file in a directory that exists or can be made."""
    for key in _PATH_OPTIONS:
        value = options.get(key)
        if not isinstance(value, str) or not value or value in _NULL_PATHS:
            continue
        path = cwd / Path(value).expanduser()
        if path.is_dir():
            raise OptionError(
                f"{key} {shorten(value)} is a directory: name a file in it", field=key
            )
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise OptionError(
                f"{key} {shorten(value)} cannot be created: "
                f"{parent} is not a directory you can write to",
                field=key,
            )


def prepare_app(
    schema: OptionSchema,
    raw: dict[str, Any],
    cwd: str,
    env: dict[str, str],
    env_name: str | None,
    *,
    check_fds: bool = True,
) -> PreparedApp:
    """Validate ``raw`` options against ``schema`` and resolve script, interpreter and env.

    ``cwd`` and ``env`` are the caller's; ``env_name`` picks ``env_<name>`` (PM2's ``--env``).
    ``check_fds=False``: the caller checks the whole batch's room once (a check lists the
    daemon's fds: once per app, a start of n apps was O(n^2)).
    """
    if not isinstance(raw, dict):
        raise OptionError(f"an app must be an object of options, got {type(raw).__name__}")
    options, warnings = schema.normalize(raw)
    app_cwd = Path(options.get("cwd") or cwd).expanduser()
    if not app_cwd.is_absolute():
        app_cwd = Path(cwd) / app_cwd
    if not app_cwd.is_dir():
        what = "is not a directory" if app_cwd.exists() else "does not exist"
        raise OptionError(
            f"cwd {shorten(str(app_cwd))} {what}: create it, or fix the option cwd",
            field="cwd",
        )
    options["cwd"] = str(app_cwd)
    interpreter = options.get("exec_interpreter")
    if isinstance(interpreter, str) and os.sep in interpreter:  # ./venv/bin/python
        options["exec_interpreter"] = os.path.join(cwd, os.path.expanduser(interpreter))
    script, is_command = resolve_script(str(options["script"]), str(app_cwd))
    interpreter = resolve_interpreter(script, options.get("exec_interpreter"), is_command)
    check_executable(script, interpreter)
    if options.get("log_date_format"):
        date_formatter(options["log_date_format"])  # refuse a bad format before anything starts
    if (options.get("uid") is not None or options.get("gid") is not None) and os.geteuid() != 0:
        raise OptionError("uid/gid need the daemon to run as root", field="uid")
    check_account(options)
    check_env_names(options)
    _check_paths(options, app_cwd)
    named = bool(options.get("name"))
    name = options.get("name") or (script if is_command else Path(script).stem)
    if env_name and raw.get("append_env_to_name", raw.get("appendEnvToName")) in (True, "true"):
        name = f"{name}-{env_name}"  # PM2's append_env_to_name (lib/API.js _startJson)
    options["name"] = name
    count = instance_count(options.get("instances"))
    if check_fds:
        check_fd_budget(count)
    if options.get("exec_mode") is None:
        # PM2: a node app given instances runs in cluster mode
        given = any(k in raw for k in ("instances", "i"))
        options["exec_mode"] = "cluster" if given and is_node(interpreter) else "fork"
    if options.get("listen"):
        parse_address(options["listen"])  # refuse a bad address before anything starts
    if options.get("merge_logs") is None:
        options["merge_logs"] = count == 1 and options["exec_mode"] == "fork"
    layers = [options.get("env")]
    if env_name:
        layers.append(options.get(f"env_{env_name}"))
    app_env = merge_env(filter_environment(env, options.get("filter_env")), *layers)
    check_increment_var(options, app_env)
    return PreparedApp(
        name, options, app_env, script, interpreter, is_command, count, warnings, named
    )
