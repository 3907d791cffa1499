"""Targets as the caller means them: resolved on the client, before they reach the daemon.

A target is ``all``, a pm_id, a name, a namespace, a script path or a config
file. The daemon runs in its own directory (``CORRAL_HOME``), so a relative path
means something only where the command was typed; this module turns what the
caller wrote into what the daemon can match:

- a config file (``ecosystem.json``, ``pm2.config.js``, ...; see
  :func:`corral.options.config.is_config_file`) becomes its apps, by the names the file
  gives them (or the names their scripts give them, as the daemon derives
  them): ``{"file": "/abs/ecosystem.json", "given": ..., "names": [...]}``;
- something written as a path (it has a ``/``, starts with ``~``, or is a file
  or a name with an extension that exists in the caller's directory) becomes
  ``{"given": "./app.py", "path": "/abs/app.py"}``: the daemon still tries it
  as a name first (an app may be called ``app.py``), then matches the script;
- ``/regex/`` goes unchanged: the daemon matches it against the apps' names;
- anything else (``web``, ``all``, ``3``, a namespace) goes unchanged.

A client of a remote daemon (``connect(address=...)``) reads a config file here,
as ``start`` does, but cannot resolve a relative path of this machine against
another: it sends an absolute path as written and refuses a relative one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from corral.daemon.selection import is_regex_target
from corral.errors import CorralError, OptionError, shorten

_SCRIPT_KEYS = ("script", "exec", "cmd", "command")  # as corral.options.config reads them


def app_name(app: dict[str, Any]) -> str:
    """The name the daemon gives a config file's app: its ``name``, else its script's
    (the stem of a file, the whole of a command line, as :func:`corral.daemon.apps.prepare_app`)."""
    name = app.get("name")
    if isinstance(name, str) and name:
        return name
    script = next((app[k] for k in _SCRIPT_KEYS if isinstance(app.get(k), str)), "")
    if any(char.isspace() for char in script.strip()):
        return script
    return Path(script).stem


def config_names(path: str | os.PathLike) -> list[str]:
    """The names of the apps a config file declares, in its order, each once."""
    from corral.options.config import (
        load_config,  # deferred: the config loader, only for a config file
    )

    names: list[str] = []
    for app in load_config(path):
        name = app_name(app)
        if name not in names:
            names.append(name)
    return names


def pick_apps(
    apps: list[dict[str, Any]], only: list[str] | None, source: str
) -> list[dict[str, Any]]:
    """The apps of ``source`` named in ``only`` (PM2's ``--only a,b``); all without it.

    Raises OptionError naming the file's apps when ``only`` has a name it lacks.
    """
    if not only:
        return apps
    names = [app_name(app) for app in apps]
    unknown = [name for name in only if name not in names]
    if unknown:
        raise OptionError(
            f"--only {shorten(','.join(unknown))}: {source} has no such app; "
            f"its apps: {', '.join(dict.fromkeys(names))}",
            field="only",
        )
    return [app for app, name in zip(apps, names, strict=True) if name in only]


def parse_only(value: str | None) -> list[str] | None:
    """``--only a,b`` as a list of names (None without the flag)."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise OptionError("--only needs app names: --only api,worker", field="only")
    return names


def is_config_target(target: Any) -> bool:
    """Whether ``target`` is an existing config file (a str or a path)."""
    # deferred: the config loader, off the import path of every command
    from corral.options.config import is_config_file

    if not isinstance(target, (str, os.PathLike)) or isinstance(target, bool):
        return False
    text = os.fspath(target)
    return bool(text) and text != "all" and is_config_file(text)


def looks_like_path(text: str) -> bool:
    """Whether a target written as ``text`` is a path rather than a bare name."""
    if "/" in text or text.startswith("~"):
        return True
    return bool(Path(text).suffix) and os.path.exists(text)


def resolve(target: Any, *, remote: bool = False) -> Any:
    """What the daemon gets for ``target`` (see the module's docstring)."""
    if isinstance(target, (list, tuple)):
        return [resolve(item, remote=remote) for item in target]
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if not isinstance(target, str) or target == "all" or (target.isascii() and target.isdigit()):
        return target
    if is_regex_target(target):
        return target
    if is_config_target(target):
        names = config_names(target)
        return {"file": os.path.abspath(target), "given": target, "names": names}
    if remote:
        if "/" not in target:
            return target  # a name there, or a script's name the daemon's side knows
        if not os.path.isabs(target):
            raise CorralError(
                f"target {shorten(target)} is a relative path of this machine, and the daemon "
                "runs on another: give the app's name, or the script's absolute path there"
            )
        return {"given": target, "path": os.path.normpath(target)}
    if not looks_like_path(target):
        return target
    return {"given": target, "path": os.path.abspath(os.path.expanduser(target))}


__all__ = [
    "app_name",
    "config_names",
    "is_config_target",
    "looks_like_path",
    "parse_only",
    "pick_apps",
    "resolve",
]
