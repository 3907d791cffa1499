"""A circus config (``[watcher:x]`` sections) read as corral apps.

Mapped as circus reads it (circus/config.py ``get_config``):

- ``cmd`` and ``args`` (shell-split: script and args; with ``shell = true`` one
  command line run through a shell), ``working_dir`` -> ``cwd``, ``uid``, ``gid``,
  ``numprocesses`` -> ``instances`` (``singleton``: 1);
- ``[env]`` (every watcher) and ``[env:a,b*]`` sections -> ``env``; ``copy_env`` false
  (circus's default) -> ``filter_env: true``: the app gets no other variable (true: it
  inherits the caller's environment, as every corral app does);
- ``stop_signal`` -> ``kill_signal``, ``graceful_timeout`` -> ``kill_timeout``,
  ``max_retry`` -> ``max_restarts``, ``respawn`` -> ``autorestart``, ``autostart``,
  ``stop_children`` -> ``treekill``; circus's defaults (SIGTERM, 30 s, 5) are written out;
- ``stdout_stream.filename`` / ``stderr_stream.filename`` -> ``out_file`` / ``error_file``;
- ``[socket:x]`` (``host``, ``port``; ``path`` for a unix socket) -> ``listen`` of the
  watcher whose ``cmd`` or ``args`` use ``$(circus.sockets.x)``, which becomes ``3``:
  corral passes the bound socket as fd 3;
- ``priority`` orders the apps (highest first); ``[circus] include`` /
  ``include_dir`` files are read too.

``$(circus.env.X)`` and ``((circus.env.x))`` expand from this environment and the
``[env]`` sections; ``$(circus.wid)`` (1, 2, ...) makes one app per process.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from pathlib import Path
from typing import Any

from corral.errors import ConfigError
from corral.options.imports import boolean, collapse, command, number, parse_ini, signal_name

_VAR = re.compile(r"\$\(circus\.([\w.\-]+)\)|\(\(circus\.([\w.\-]+)\)\)", re.I)
_STREAM_FILES = ("FileStream", "WatchedFileStream", "TimedRotatingFileStream")
_MAPPED = {
    "cmd", "args", "working_dir", "numprocesses", "singleton", "uid", "gid", "copy_env",
    "stop_signal", "graceful_timeout", "max_retry", "respawn", "autostart", "use_sockets",
    "stop_children", "priority", "shell",
}  # fmt: skip
_HINTS = {"max_bytes": "use the logrotate plugin", "backup_count": "use the logrotate plugin"}
_SOCKET_KEYS = {"host", "port", "path", "family"}
FD = 3  # where corral's child finds its listening socket (systemd socket activation)


def convert(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The apps of the circus file ``path`` (and its includes), and the notes."""
    sections = _sections(path)
    notes: list[str] = []
    global_env = dict(os.environ)
    local_env = {  # circus expands [env] values, not [env:x] ones
        key: _expand(value, global_env, None, set())
        for key, value in sections.get("env", {}).items()
    }
    global_env.update(local_env)
    watchers = {
        name[8:]: values for name, values in sections.items() if name.startswith("watcher:")
    }
    sockets = {
        name[7:].lower(): values for name, values in sections.items() if name.startswith("socket:")
    }
    envs: dict[str, dict[str, str]] = {name: dict(local_env) for name in watchers}
    for section, values in sections.items():
        if section.startswith("env:"):
            for pattern in (p.strip() for p in section[4:].split(",")):
                for name in watchers:
                    if fnmatch.fnmatch(name, pattern):
                        envs[name].update(values)
        elif section == "circus":
            others = [k for k in values if k not in ("include", "include_dir")]
            if others:
                notes.append(f"circus {' '.join(others)} (corral's daemon has its own)")
        elif section.startswith("plugin:"):
            notes.append(f"[{section}] (no equivalent)")
        elif not section.startswith(("watcher:", "socket:")) and section != "env":
            notes.append(f"[{section}] (unknown section)")
    used: set[str] = set()
    ordered = []
    for name, values in watchers.items():
        where = f"{path}: [watcher:{name}]"
        env = {**global_env, **envs[name]}
        copy_env = boolean(values.get("copy_env", "false"), f"{where} copy_env")
        app_env = dict(envs[name])  # copy_env: the rest is inherited (not filter_env)
        apps = _watcher(name, values, env, app_env, copy_env, sockets, used, where, notes)
        priority = number(values.get("priority", "0"), f"{where} priority")
        ordered.append((-priority, name, apps))
    for name, values in sockets.items():
        if name not in used:
            notes.append(f"socket:{name} (no watcher uses $(circus.sockets.{name}))")
        notes += [f"socket:{name} {key}" for key in values if key not in _SOCKET_KEYS]
    ordered.sort(key=lambda item: (item[0], item[1]))
    return [app for _, _, apps in ordered for app in apps], notes


def _sections(path: Path) -> dict[str, dict[str, str]]:
    """Every section of ``path`` and of the files ``[circus] include`` names."""
    parser = parse_ini(path, keep_case=True)
    found = {name: dict(parser.items(name)) for name in parser.sections()}
    main = found.get("circus", {})
    base = path.resolve().parent
    patterns = main.get("include", "").split()
    patterns += [os.path.join(d, "*.ini") for d in main.get("include_dir", "").split()]
    for pattern in patterns:
        for name in sorted(glob.glob(str(base / os.path.expanduser(pattern)))):
            other = parse_ini(Path(name), keep_case=True)
            for section in other.sections():
                found.setdefault(section, {}).update(other.items(section))
    return found


def _expand(text: str, env: dict[str, str], wid: int | None, sockets: set[str]) -> str:
    """``$(circus.env.X)`` from ``env``; ``$(circus.wid)`` as ``wid``; sockets as fd 3.

    What names nothing is left as written, as circus leaves it."""
    lowered = {k.lower(): v for k, v in env.items()}

    def replace(match: re.Match[str]) -> str:
        name = (match[1] or match[2]).lower()
        if name.startswith("env.") and name[4:] in lowered:
            return lowered[name[4:]]
        if name == "wid" and wid is not None:
            return str(wid)
        if name.startswith("sockets.") and name[8:] in sockets:
            return str(FD)
        return match[0]

    return _VAR.sub(replace, text)


def _watcher(
    name: str,
    values: dict[str, str],
    env: dict[str, str],
    app_env: dict[str, str],
    copy_env: bool,
    sockets: dict[str, dict[str, str]],
    used: set[str],
    where: str,
    notes: list[str],
) -> list[dict[str, Any]]:
    for key in values:
        if key not in _MAPPED and not key.startswith(("stdout_stream.", "stderr_stream.")):
            notes.append(f"watcher:{name} {key}")
    if not values.get("cmd", "").strip():
        raise ConfigError(f"{where}: no cmd: give cmd = /path/to/program")
    line = f"{values['cmd']} {values.get('args', '')}"
    wanted = {m.lower() for m in re.findall(r"circus\.sockets\.([\w.\-]+)", line, re.I)}
    unknown = sorted(wanted - set(sockets))
    if unknown:
        raise ConfigError(
            f"{where} cmd: $(circus.sockets.{unknown[0]}) names no [socket:{unknown[0]}] section"
        )
    if len(wanted) > 1:
        raise ConfigError(
            f"{where} cmd: uses {len(wanted)} sockets ({', '.join(sorted(wanted))}); corral "
            "passes one listening socket per app: split the watcher"
        )
    used |= wanted
    count = number(values.get("numprocesses", "1"), f"{where} numprocesses", minimum=0)
    if boolean(values.get("singleton", "false"), f"{where} singleton"):
        count = 1
    shell = boolean(values.get("shell", "false"), f"{where} shell")
    per_wid = re.search(r"circus\.wid", line, re.I) is not None and count > 1
    apps = []
    for wid in range(1, (count if per_wid else 1) + 1):
        expanded = {
            key: _expand(value, env, wid if per_wid else 1, wanted) for key, value in values.items()
        }
        text = expanded["cmd"] + (" " + expanded["args"] if expanded.get("args") else "")
        app: dict[str, Any] = {"name": f"{name}-{wid}" if per_wid else name}
        app.update(command(text, f"{where} cmd", shell=shell))
        _options(app, expanded, app_env, copy_env, where)
        for note in _streams(app, expanded, name):
            if note not in notes:
                notes.append(note)
        if wanted:
            app["listen"] = _listen(next(iter(wanted)), sockets)
        apps.append(app)
    if per_wid:
        apps = collapse(apps, name) or [{**app, "namespace": name} for app in apps]
    elif count > 1:
        apps[0]["instances"] = count
    elif count == 0:  # circus starts no process (corral's instances 0 means one per CPU)
        apps[0]["autostart"] = False
        notes.append(f"watcher:{name} numprocesses 0 (the app is added stopped)")
    return apps


def _options(
    app: dict[str, Any], values: dict[str, str], env: dict[str, str], copy_env: bool, where: str
) -> None:
    if values.get("working_dir"):
        app["cwd"] = values["working_dir"]
    for key in ("uid", "gid"):
        if values.get(key):
            app[key] = values[key]
    if env:
        app["env"] = env
    if not copy_env:
        app["filter_env"] = True
    app["kill_signal"] = signal_name(values.get("stop_signal", "TERM"), f"{where} stop_signal")
    grace = number(values.get("graceful_timeout", "30"), f"{where} graceful_timeout",
                   kind=float, minimum=0)  # fmt: skip
    app["kill_timeout"] = max(1, round(grace * 1000))
    retries = number(values.get("max_retry", "5"), f"{where} max_retry", minimum=-1)
    app["max_restarts"] = 2**31 - 1 if retries == -1 else retries  # -1: for ever
    if not boolean(values.get("respawn", "true"), f"{where} respawn"):
        app["autorestart"] = False
    if not boolean(values.get("autostart", "true"), f"{where} autostart"):
        app["autostart"] = False
    app["treekill"] = boolean(values.get("stop_children", "false"), f"{where} stop_children")


def _streams(app: dict[str, Any], values: dict[str, str], name: str) -> list[str]:
    """``out_file`` / ``error_file`` of a FileStream; the notes for the rest."""
    notes = []
    for stream, key in (("stdout_stream", "out_file"), ("stderr_stream", "error_file")):
        options = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(stream + ".")}
        kind = options.pop("class", "FileStream" if "filename" in options else "")
        filename = options.pop("filename", None)
        if kind.rsplit(".", 1)[-1] in _STREAM_FILES and filename:
            app[key] = filename
        elif kind or filename:
            notes.append(f"watcher:{name} {stream}.class {kind or '(none)'}")
        for option in options:
            hint = _HINTS.get(option, "")
            note = f"watcher:{name} {stream}.{option}" + (f" ({hint})" if hint else "")
            notes.append(note)
    return notes


def _listen(name: str, sockets: dict[str, dict[str, str]]) -> str:
    values = sockets[name]
    if values.get("path") or values.get("family", "").upper() == "AF_UNIX":
        return f"unix:{values.get('path', '')}"
    host = values.get("host", "localhost")
    port = values.get("port", "8080")
    if not port.strip().isdigit():
        raise ConfigError(f"[socket:{name}] port: {port!r} is not a port number")
    return f"{host}:{port.strip()}"
