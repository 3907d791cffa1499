"""How the systemd exporter resolves an app's command line: script, interpreter, cwd.

Paths: systemd needs absolute ones. A relative ``cwd``, script or interpreter
path starts from ``--app-root`` (the directory ``corral start`` would run in
on the target; default: the config file's). An interpreter or a command given
by its bare name (``node``, ``python3``, ``npm``) stays bare: systemd 239 and
later look it up in their fixed search path (/usr/local/sbin:/usr/local/bin:
/usr/sbin:/usr/bin); ``--interpreter node=/opt/node/bin/node`` names another.
"""

from __future__ import annotations

import os
import shlex
from pathlib import PurePosixPath
from typing import Any

from corral import OptionError

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


def absolute(path: str, base: str, what: str) -> str:
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
    return absolute(app.options.get("cwd") or ".", root, "cwd")


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
        return absolute(name, root, "interpreter")
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
        script = absolute(script, cwd, "script")  # a file, from the app's cwd
    if interpreter in (None, "none"):
        return [script, *args]
    runner = _interpreter(str(interpreter), root, chosen)
    return [runner, *_words(options.get("node_args")), script, *args]


def interpreter_of(options: dict[str, Any]) -> str:
    """The interpreter corral picks for the app (its name), or "none"."""
    script = str(options["script"]).strip()
    if " " in script and not options.get("exec_interpreter"):
        return "bash"
    chosen = options.get("exec_interpreter") or INTERPRETERS.get(
        PurePosixPath(script).suffix.lower()
    )
    return str(chosen or "none")


def is_bare_command(options: dict[str, Any]) -> bool:
    """A script named with no path and no suffix corral knows: a command, not a file."""
    script = str(options["script"]).strip()
    if " " in script or "/" in script or options.get("exec_interpreter") not in (None, "none"):
        return False
    return PurePosixPath(script).suffix.lower() not in INTERPRETERS


def is_node_app(options: dict[str, Any]) -> bool:
    """The app runs under node (or bun): by its interpreter, else its script's suffix."""
    interpreter = str(options.get("exec_interpreter") or "")
    if interpreter:
        return PurePosixPath(interpreter.split()[0]).name.startswith(("node", "nodejs", "bun"))
    return str(options["script"]).endswith((".js", ".cjs", ".mjs", ".ts"))


def interpreter_pairs(values: Any) -> list[tuple[str, str]]:
    """``--interpreter NAME=PATH`` values as (NAME, PATH) pairs."""
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
