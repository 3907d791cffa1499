"""Config files: read an ecosystem file into the raw app dicts it declares.

JSON (leniently, as PM2: comments and trailing commas, through a JSON5
reader), YAML and TOML, and ``ecosystem.config.js`` (and ``.cjs``, ``.mjs``)
through ``node`` when it is installed: each format's reader is in
:mod:`corral.options.formats`. A file may hold ``{"apps": [...]}``, a bare
list of apps, or one app, as PM2 accepts. The apps come back as written,
except that relative paths are made absolute as PM2 makes them (see
:func:`resolve_app_paths`): the daemon normalizes the options.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from corral.errors import ConfigError, shorten
from corral.options.config_paths import resolve_app_paths as resolve_app_paths  # public here too
from corral.options.formats import PARSERS, check_depth, parse_json, read_js, too_deep
from corral.options.typos import app_label

CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".toml", ".js", ".cjs", ".mjs")
_JS_SUFFIXES = (".js", ".cjs", ".mjs")
_SCRIPT_KEYS = ("script", "exec", "cmd", "command")  # PM2's names for the script
_INI_SUFFIXES = ("", ".conf", ".ini", ".cfg")  # supervisord.conf, circus.ini, /etc/x


def is_config_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an existing config file rather than a script to run.

    A ``.js`` file counts only when named ``*.config.js`` or ``ecosystem*.js``
    (likewise ``.cjs``/``.mjs``): a plain ``app.js`` is a script. A path the OS
    cannot even look at (too long, say) is not one: the caller's own checks name it.
    """
    try:
        return _is_config_file(Path(path))
    except OSError:
        return False


def _is_config_file(path: Path) -> bool:
    name, suffix = path.name.lower(), path.suffix.lower()
    if suffix not in CONFIG_SUFFIXES:
        # a script (app.py, server.js, run.sh) is never opened to look for sections
        return suffix in _INI_SUFFIXES and _is_ini_config(path)
    if suffix in _JS_SUFFIXES and not (
        name.endswith(".config" + suffix) or name.startswith("ecosystem")
    ):
        return False
    return path.is_file()


def _is_ini_config(path: Path) -> bool:
    """A supervisord or circus ini file (by its sections, whatever its name)."""
    # deferred: the ini readers (configparser, shlex), only for an ini file
    from corral.options.imports import ini_kind

    return path.is_file() and ini_kind(path) is not None


def load_config(
    path: str | os.PathLike, cwd: str | os.PathLike | None = None
) -> list[dict[str, Any]]:
    """The apps a config file declares, as raw dicts with absolute paths.

    Relative paths resolve as PM2 resolves them, against ``cwd``: the caller's
    working directory (default: this process's), see :func:`resolve_app_paths`.
    Raises ConfigError naming the file (and the line, where the parser gives
    it) when the file is missing, unreadable, malformed or declares no apps.
    """
    base_dir = Path(os.path.abspath(path)).parent
    return [
        resolve_app_paths(app, base_dir, cwd, source=f"{path}: {app_label(app, index)}")
        for index, app in enumerate(read_apps(path))
    ]


def load_config_text(
    text: str, cwd: str | os.PathLike | None = None, *, source: str = "<stdin>"
) -> list[dict[str, Any]]:
    """The apps of a JSON config given as text (``corral start -`` reads it from stdin).

    As PM2, relative paths resolve against ``cwd`` (default: this process's), which
    also stands for the file's folder. Raises ConfigError naming ``source``.
    """
    where = Path(source)
    try:
        data = parse_json(where, text)
    except ConfigError:
        raise
    except RecursionError:
        raise ConfigError(too_deep(source)) from None
    except ValueError as exc:
        raise ConfigError(f"{source}: {str(exc).split(';')[0]}") from None
    check_depth(data, source)
    base_dir = os.path.abspath(cwd) if cwd else os.getcwd()
    return [
        resolve_app_paths(app, base_dir, cwd, source=f"{source}: {app_label(app, index)}")
        for index, app in enumerate(_apps_of(where, data))
    ]


def read_apps(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The apps a config file declares, exactly as written (paths not resolved).

    Raises ConfigError as :func:`load_config` does.
    """
    path = Path(path)
    if path.suffix.lower() not in CONFIG_SUFFIXES and _is_ini_config(path):
        from corral.options.imports import read_apps as read_ini_apps  # supervisord's or circus's

        return read_ini_apps(path)
    return _apps_of(path, read_data(path))


def read_sections(path: str | os.PathLike) -> tuple[list[dict[str, Any]], Any]:
    """The apps (as written; none is no error) and the ``deploy`` section (as written,
    None when absent) of a config file, for a command that reads both (``corral
    deploy``, an export). Raises ConfigError as :func:`load_config` does."""
    path = Path(path)
    if path.suffix.lower() not in CONFIG_SUFFIXES and _is_ini_config(path):
        return read_apps(path), None
    data = read_data(path)
    deploy = data.get("deploy") if isinstance(data, dict) else None
    apps = _apps_of(path, data) if _declares_apps(data) else []
    return apps, deploy


def read_deploy(path: str | os.PathLike) -> Any:
    """The ``deploy`` section of a config file as written (None without one), for
    ``corral deploy``: the apps' options are the target's to check, not this machine's."""
    return read_sections(path)[1]


def _declares_apps(data: Any) -> bool:
    """Whether a parsed file has apps at all (a deploy-only file has none)."""
    if isinstance(data, dict):
        return any(k in data for k in ("apps", "pm2", *_SCRIPT_KEYS))
    return isinstance(data, list)


def read_data(path: Path) -> Any:
    """A JSON, YAML, TOML or JavaScript config file, parsed (ConfigError naming it)."""
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"config file {path} {what}")
    suffix = path.suffix.lower()
    if suffix in _JS_SUFFIXES:
        data = read_js(path)
    elif suffix in CONFIG_SUFFIXES:
        try:
            data = PARSERS[suffix](path, _read_text(path))
        except RecursionError:  # the parsers recurse once per level
            raise ConfigError(too_deep(path)) from None
        except ValueError as exc:  # an integer over Python's 4300 digits, in any format
            raise ConfigError(f"{path}: {str(exc).split(';')[0]}") from None
    else:
        raise ConfigError(
            f"{path}: unknown config format {suffix or '(no suffix)'!r}: "
            f"use one of {', '.join(CONFIG_SUFFIXES)}"
        )
    check_depth(data, path)
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


def _apps_of(path: Path, data: Any) -> list[dict[str, Any]]:
    """The app list of a parsed file: ``{"apps": [...]}``, ``[...]`` or one app.

    ``{"pm2": [...]}`` is read as ``apps``, as PM2 reads it (a package.json section)."""
    key = next((k for k in ("apps", "pm2") if isinstance(data, dict) and k in data), None)
    if key:
        apps = data[key]
        if isinstance(apps, dict):
            apps = [apps]
        if not isinstance(apps, list):
            raise ConfigError(f"{path}: '{key}' must be a list of apps, got {_json_kind(apps)}")
    elif isinstance(data, list):
        apps = data
    elif isinstance(data, dict) and any(key in data for key in _SCRIPT_KEYS):
        apps = [data]
    else:
        near = (
            [k for k in data if isinstance(k, str) and k.lower() in _NEAR_APPS]
            if isinstance(data, dict)
            else []
        )
        hint = f" (the file has {near[0]!r}: rename it 'apps')" if near else ""
        if isinstance(data, dict) and isinstance(data.get("deploy"), dict) and not near:
            envs = ", ".join(sorted(map(str, data["deploy"])))
            hint = (
                f" (the file has only a deploy section, for {shorten(envs)}: "
                f"run 'corral deploy {path} ENV setup|update', or add 'apps')"
            )
        raise ConfigError(
            f'{path}: no apps found: expected {{"apps": [...]}}, a list of apps, '
            f"or one app with a 'script'{hint}"
        )
    if not apps:
        raise ConfigError(f"{path}: no apps found: the list of apps is empty")
    for index, app in enumerate(apps):
        if not isinstance(app, dict):
            raise ConfigError(f"{path}: apps[{index}] is not an object, got {_json_kind(app)}")
    return apps


_NEAR_APPS = ("app", "application", "applications", "process", "processes")


def _json_kind(value: Any) -> str:
    kinds = {bool: "a boolean", str: "a string", int: "a number", float: "a number", list: "a list"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
