"""From the options a caller sent to an app ready to run: validated, resolved, counted.

Everything here can fail with a clear error, and nothing here has side
effects, so a batch of apps is prepared in full before any of them starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .datefmt import date_formatter
from .errors import OptionError
from .listen import parse_address
from .options import OptionSchema
from .spawn import (
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


def instance_count(value: Any) -> int:
    """PM2's rule: 0 (or 'max') = CPU count, negative n = CPU count + n, at least 1."""
    count = int(value if value is not None else 1)
    cpus = os.cpu_count() or 1
    if count == 0:
        count = cpus
    elif count < 0:
        count = cpus + count
    return max(count, 1)


def prepare_app(
    schema: OptionSchema,
    raw: dict[str, Any],
    cwd: str,
    env: dict[str, str],
    env_name: str | None,
) -> PreparedApp:
    """Validate ``raw`` options against ``schema`` and resolve script, interpreter and env.

    ``cwd`` and ``env`` are the caller's; ``env_name`` picks ``env_<name>`` (PM2's ``--env``).
    """
    if not isinstance(raw, dict):
        raise OptionError(f"an app must be an object of options, got {type(raw).__name__}")
    options, warnings = schema.normalize(raw)
    app_cwd = Path(options.get("cwd") or cwd).expanduser()
    if not app_cwd.is_absolute():
        app_cwd = Path(cwd) / app_cwd
    if not app_cwd.is_dir():
        raise OptionError(f"cwd {str(app_cwd)!r} is not a directory", field="cwd")
    options["cwd"] = str(app_cwd)
    script, is_command = resolve_script(str(options["script"]), str(app_cwd))
    interpreter = resolve_interpreter(script, options.get("exec_interpreter"), is_command)
    check_executable(script, interpreter)
    if options.get("log_date_format"):
        date_formatter(options["log_date_format"])  # refuse a bad format before anything starts
    if (options.get("uid") is not None or options.get("gid") is not None) and os.geteuid() != 0:
        raise OptionError("uid/gid need the daemon to run as root", field="uid")
    name = options.get("name") or (script if is_command else Path(script).stem)
    options["name"] = name
    count = instance_count(options.get("instances"))
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
    return PreparedApp(name, options, app_env, script, interpreter, is_command, count, warnings)
