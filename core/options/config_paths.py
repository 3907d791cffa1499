"""Relative paths of a config file's apps, made absolute as PM2 makes them.

PM2 (``lib/Common.js`` prepareAppConf, ``lib/tools/which.js``) resolves ``cwd``
against the directory the command runs from, ``script`` against the app's
``cwd`` (else that directory), and an interpreter path with a slash against
that directory. corral does the same; where that names nothing but the path
read from the config file's folder (corral's former rule) exists, it uses that
one and says so in a :class:`corral.CorralWarning`, so files written either
way load.
"""

from __future__ import annotations

import os
import shutil
import warnings
from typing import Any

from corral.errors import CorralWarning

_SCRIPT_KEYS = ("script", "exec", "cmd", "command")  # PM2's names for the script


def resolve_app_paths(
    app: dict[str, Any],
    base_dir: str | os.PathLike,
    cwd: str | os.PathLike | None = None,
    *,
    source: str = "config",
) -> dict[str, Any]:
    """A copy of ``app`` whose relative ``cwd``, ``script`` and interpreter path are absolute.

    As PM2 (``lib/Common.js`` prepareAppConf, ``lib/tools/which.js``): ``cwd``
    resolves against ``cwd``, the caller's working directory (default: this
    process's); ``script`` against the app's ``cwd`` when it has one, else the
    caller's; an interpreter path with a slash (``./venv/bin/python``) against
    the caller's. Where that names nothing but the same path taken from
    ``base_dir`` (the config file's folder) does, that one is used, and a
    :class:`corral.CorralWarning` (``source`` names the file and app) says so.
    A bare name that is no file (``python3``) and a command line with spaces
    are left for the daemon to find on PATH or run through a shell.
    """
    resolved = dict(app)
    caller = os.path.abspath(os.path.expanduser(cwd)) if cwd else os.getcwd()
    folder = os.path.abspath(os.path.expanduser(base_dir))
    paths = _Paths(source)
    base, folder_base = caller, folder
    app_cwd = resolved.get("cwd")
    if isinstance(app_cwd, str) and app_cwd:
        base = paths.pick("cwd", app_cwd, [(caller, ""), (folder, _FOLDER)], os.path.isdir)
        folder_base = _join(folder, app_cwd)
        resolved["cwd"] = base
    for key in _SCRIPT_KEYS:
        script = resolved.get(key)
        if isinstance(script, str) and script and not any(c.isspace() for c in script):
            resolved[key] = paths.script(key, script, base, folder_base)
    for key in _INTERPRETER_KEYS:
        value = resolved.get(key)
        if isinstance(value, str) and os.sep in value:
            bases = [(caller, ""), (base, "the app's cwd"), (folder, _FOLDER)]
            resolved[key] = paths.pick(key, value, bases, os.path.exists)
    return resolved


_INTERPRETER_KEYS = ("exec_interpreter", "execInterpreter", "interpreter")
_FOLDER = "the config file's folder"


class _Paths:
    """Picks PM2's path or, when only that exists, the config folder's; notes the fallback."""

    def __init__(self, source: str) -> None:
        self.source = source

    def pick(self, key: str, value: str, bases: list[tuple[str, str]], exists: Any) -> str:
        """``value`` against the first of ``bases`` (dir, what it is) where it exists."""
        expanded = os.path.expanduser(value)
        if os.path.isabs(expanded):
            return os.path.normpath(expanded)
        first = _join(bases[0][0], expanded)
        if exists(first):
            return first
        for base, where in bases[1:]:
            other = _join(base, expanded)
            if other != first and exists(other):
                self.note(key, value, first, other, where)
                return other
        return first  # PM2's path: the daemon's error names it

    def script(self, key: str, script: str, base: str, folder_base: str) -> str:
        expanded = os.path.expanduser(script)
        if os.path.isabs(expanded):
            return expanded
        candidate = _join(base, expanded)
        if os.path.exists(candidate):
            return candidate
        if os.sep not in expanded and shutil.which(expanded):
            return script  # a command on PATH (python3, npm), as PM2's which()
        fallback = _join(folder_base, expanded)
        if fallback != candidate and os.path.exists(fallback):
            self.note(key, script, candidate, fallback, _FOLDER)
            return fallback
        return candidate if os.sep in expanded else script

    def note(self, key: str, value: str, pm2_path: str, used: str, where: str) -> None:
        warnings.warn(
            f"{self.source}: {key} {value!r} found relative to {where} ({used}), "
            f"not where PM2 looks ({pm2_path}): write it relative to the directory you "
            "run from, or make it absolute",
            CorralWarning,
            stacklevel=5,
        )


def _join(base: str, path: str) -> str:
    return os.path.normpath(os.path.join(base, os.path.expanduser(path)))
