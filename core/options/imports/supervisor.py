"""A supervisord config (``[program:x]`` sections) read as corral apps.

Mapped as supervisord reads it (supervisor/options.py ``processes_from_section``):

- ``command`` (shell-split: script and args; run as the program itself),
  ``directory`` -> ``cwd``, ``user`` -> ``uid``, ``environment`` (``KEY="v",K2=v2``,
  over ``[supervisord] environment``) -> ``env``;
- ``autorestart`` ``true`` / ``false`` / ``unexpected`` (the default: then ``exitcodes``,
  default 0, become ``stop_exit_codes``), ``autostart``, ``startsecs`` ->
  ``min_uptime``, ``startretries`` -> ``max_restarts``, ``stopsignal`` ->
  ``kill_signal``, ``stopwaitsecs`` -> ``kill_timeout``, ``killasgroup`` -> ``treekill``
  (supervisord's defaults are written out where corral's differ: TERM, 10 s, 3);
- ``numprocs`` -> ``instances`` when the copies differ only by ``process_name``,
  else one app per process, named by ``process_name``, in a namespace of the program;
- ``stdout_logfile`` / ``stderr_logfile`` (``AUTO``: corral's, ``NONE``: /dev/null),
  ``redirect_stderr`` -> both streams in the out file;
- ``priority`` orders the apps; ``[group:x] programs=`` -> ``namespace: x``;
  ``[include] files=`` globs are read too (relative to the file).

``%(here)s``, ``%(program_name)s``, ``%(process_num)d``, ``%(numprocs)d``,
``%(group_name)s``, ``%(host_node_name)s`` and ``%(ENV_X)s`` (this environment, then
the program's ``environment``) expand as in supervisord.
"""

from __future__ import annotations

import glob
import os
import platform
import shlex
from pathlib import Path
from typing import Any

from corral.errors import ConfigError
from corral.options.imports import boolean, collapse, command, number, parse_ini, signal_name
from corral.paths import home, safe_name

# keys supervisord knows that corral has no equivalent for, with the hint to give
_UNMAPPED = {
    "umask": "",
    "serverurl": "",
    "stdout_logfile_maxbytes": "use the logrotate plugin",
    "stdout_logfile_backups": "use the logrotate plugin",
    "stderr_logfile_maxbytes": "use the logrotate plugin",
    "stderr_logfile_backups": "use the logrotate plugin",
    "stdout_capture_maxbytes": "",
    "stderr_capture_maxbytes": "",
    "stdout_events_enabled": "",
    "stderr_events_enabled": "",
    "stdout_syslog": "",
    "stderr_syslog": "",
}
_MAPPED = {
    "command", "directory", "user", "environment", "autostart", "autorestart", "exitcodes",
    "startsecs", "startretries", "stopsignal", "stopwaitsecs", "stopasgroup", "killasgroup",
    "numprocs", "numprocs_start", "process_name", "stdout_logfile", "stderr_logfile",
    "redirect_stderr", "priority",
}  # fmt: skip
_DAEMON_SECTIONS = ("unix_http_server", "inet_http_server", "supervisorctl", "rpcinterface:")


class _Section:
    """One section's raw values, where it came from, and its ``%(here)s``."""

    def __init__(self, name: str, values: dict[str, str], path: Path) -> None:
        self.name, self.values, self.path = name, values, path
        self.here = str(path.resolve().parent)


def convert(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The apps of the supervisord file ``path`` (and its includes), and the notes."""
    sections = _sections(path)
    notes: list[str] = []
    groups: dict[str, str] = {}  # program -> group
    global_env: dict[str, str] = {}
    for section in sections.values():
        kind, _, rest = section.name.partition(":")
        where = f"{section.path}: [{section.name}]"
        if section.name == "supervisord":
            env = section.values.get("environment")
            if env:
                global_env = _environment(_expand(env, _base(section), where, "environment"), where)
            others = [key for key in section.values if key != "environment"]
            if others:
                notes.append(f"supervisord {' '.join(others)} (corral's daemon has its own)")
        elif kind == "group" and rest:
            for program in section.values.get("programs", "").split(","):
                if program.strip():
                    groups[program.strip()] = rest
            notes += [f"group:{rest} {key}" for key in section.values if key != "programs"]
        elif kind == "program" and rest:
            continue
        elif section.name == "include":
            continue
        elif section.name.startswith(_DAEMON_SECTIONS):
            notes.append(f"[{section.name}] (supervisord's own server)")
        elif kind in ("eventlistener", "fcgi-program"):
            notes.append(f"[{section.name}] (no equivalent)")
        else:
            notes.append(f"[{section.name}] (unknown section)")
    ordered: list[tuple[int, str, list[dict[str, Any]]]] = []
    for section in sections.values():
        kind, _, name = section.name.partition(":")
        if kind == "program" and name:
            group = groups.get(name)
            priority, apps = _program(section, name, group, global_env, notes)
            ordered.append((priority, name, apps))
    ordered.sort(key=lambda item: (item[0], item[1]))  # supervisord's start order
    return [app for _, _, apps in ordered for app in apps], notes


def _sections(path: Path) -> dict[str, _Section]:
    """Every section of ``path`` and of the files its ``[include] files=`` name."""
    parser = parse_ini(path, keep_case=False)
    found = {name: _Section(name, dict(parser.items(name)), path) for name in parser.sections()}
    include = found.get("include")
    if include is None:
        return found
    patterns = _expand(include.values.get("files", ""), _base(include), str(path), "files")
    for pattern in shlex.split(patterns):
        full = os.path.join(include.here, os.path.expanduser(pattern))
        for name in sorted(glob.glob(full)):
            other = parse_ini(Path(name), keep_case=False)
            for section in other.sections():
                values = dict(other.items(section))
                if section in found:
                    found[section].values.update(values)
                else:
                    found[section] = _Section(section, values, Path(name))
    return found


def _base(section: _Section) -> dict[str, Any]:
    expansions: dict[str, Any] = {f"ENV_{k}": v for k, v in os.environ.items()}
    expansions.update(here=section.here, host_node_name=platform.node())
    return expansions


def _expand(text: str, expansions: dict[str, Any], where: str, key: str) -> str:
    try:
        return text % expansions
    except KeyError as exc:
        names = ", ".join(sorted(k for k in expansions if not k.startswith("ENV_")))
        raise ConfigError(
            f"{where} {key}: %({exc.args[0]})s cannot be expanded: use one of {names}, "
            "ENV_<variable>, or %% for a literal %"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where} {key}: {text!r} is badly formatted ({exc}): "
                          "write %% for a literal %") from None  # fmt: skip


def _environment(text: str, where: str) -> dict[str, str]:
    """``KEY="val",KEY2=val2`` as supervisord reads it (datatypes.dict_of_key_value_pairs)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ConfigError(f"{where} environment: {exc}: close the quote") from None
    env: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        key_eq_value = tokens[index : index + 3]
        if len(key_eq_value) != 3 or key_eq_value[1] != "=":
            raise ConfigError(
                f"{where} environment: {text!r} is not KEY=value pairs: write "
                'KEY="value",KEY2="value 2" (quote values with commas or spaces)'
            )
        env[key_eq_value[0]] = key_eq_value[2]
        index += 4
    return env


def _program(
    section: _Section, name: str, group: str | None, global_env: dict[str, str], notes: list[str]
) -> tuple[int, list[dict[str, Any]]]:
    where = f"{section.path}: [{section.name}]"
    raw = section.values
    for key in raw:
        if key in _UNMAPPED:
            hint = _UNMAPPED[key]
            notes.append(f"{section.name} {key}" + (f" ({hint})" if hint else ""))
        elif key not in _MAPPED:
            notes.append(f"{section.name} {key} (unknown to supervisord)")
    base = _base(section)
    base.update(program_name=name, group_name=group or name)

    def plain(key: str, default: str) -> str:
        return _expand(raw.get(key, default), base, where, key)

    numprocs = number(plain("numprocs", "1"), f"{where} numprocs", minimum=1)
    start = number(plain("numprocs_start", "0"), f"{where} numprocs_start", minimum=0)
    process_name = raw.get("process_name", "%(program_name)s")
    if numprocs > 1 and "%(process_num)" not in process_name:
        raise ConfigError(
            f"{where} process_name: with numprocs {numprocs} it must hold %(process_num)s "
            "(as supervisord requires), e.g. process_name=%(program_name)s_%(process_num)02d"
        )
    priority = number(plain("priority", "999"), f"{where} priority")
    if "command" not in raw:
        raise ConfigError(f"{where}: no command: give command=/path/to/program args")
    apps = []
    for num in range(start, start + numprocs):
        expansions = {**base, "process_num": num, "numprocs": numprocs}
        env = {**global_env}
        if "environment" in raw:
            own = _environment(_expand(raw["environment"], expansions, where, "environment"), where)
            env.update(own)
            expansions.update({f"ENV_{k}": v for k, v in own.items()})
        values = {
            key: _expand(value, expansions, where, key)
            for key, value in raw.items()
            if key in _MAPPED and key != "environment"
        }
        values.setdefault("process_name", _expand(process_name, expansions, where, "process_name"))
        apps.append(_app(values, env, where))
    if len(apps) == 1:
        apps[0] = {"name": name, **apps[0]}
        del apps[0]["_process_name"]
    else:
        for app in apps:
            app["name"] = app.pop("_process_name")
        one = collapse(apps, name)
        if one is not None:
            apps = one
        else:
            apps = [{"name": app.pop("name"), **app} for app in apps]
            for app in apps:
                app.setdefault("namespace", name)
    for app in apps:
        _redirect(app)
        if group:
            app["namespace"] = group
    return priority, apps


def _app(values: dict[str, str], env: dict[str, str], where: str) -> dict[str, Any]:
    """One process's options from its expanded values."""
    app: dict[str, Any] = {"_process_name": values["process_name"]}
    app.update(command(values["command"], f"{where} command"))
    if values.get("directory"):
        app["cwd"] = values["directory"]
    if values.get("user"):
        app["uid"] = values["user"]
    if env:
        app["env"] = env
    if not boolean(values.get("autostart", "true"), f"{where} autostart"):
        app["autostart"] = False
    restart = values.get("autorestart", "unexpected").strip().lower()
    if restart == "unexpected":
        codes = values.get("exitcodes", "0")
        try:
            app["stop_exit_codes"] = [int(code) for code in codes.split(",") if code.strip()]
        except ValueError:
            raise ConfigError(f"{where} exitcodes: {codes!r} is not a list of exit codes "
                              "like 0,2") from None  # fmt: skip
    elif restart in ("false", "no", "off", "0"):
        app["autorestart"] = False
    elif restart not in ("true", "yes", "on", "1"):
        raise ConfigError(f"{where} autorestart: {restart!r} is not true, false or unexpected")
    startsecs = number(values.get("startsecs", "1"), f"{where} startsecs", minimum=0)
    app["min_uptime"] = max(100, startsecs * 1000)  # corral's least is 100 ms
    app["max_restarts"] = number(values.get("startretries", "3"), f"{where} startretries",
                                 minimum=0)  # fmt: skip
    app["kill_signal"] = signal_name(values.get("stopsignal", "TERM"), f"{where} stopsignal")
    wait = number(values.get("stopwaitsecs", "10"), f"{where} stopwaitsecs", minimum=0)
    app["kill_timeout"] = max(1, wait * 1000)  # 0 would mean corral's default
    stop_group = boolean(values.get("stopasgroup", "false"), f"{where} stopasgroup")
    kill_group = boolean(values.get("killasgroup", str(stop_group)), f"{where} killasgroup")
    app["treekill"] = stop_group or kill_group
    _logs(app, values, where)
    return app


def _logs(app: dict[str, Any], values: dict[str, str], where: str) -> None:
    """``stdout_logfile``, ``stderr_logfile`` and ``redirect_stderr`` as corral's log files."""
    files = {}
    for stream, key in (("stdout_logfile", "out_file"), ("stderr_logfile", "error_file")):
        value = values.get(stream, "AUTO").strip()
        if value.upper() == "AUTO":
            continue
        files[key] = "/dev/null" if value.upper() == "NONE" else value
    if boolean(values.get("redirect_stderr", "false"), f"{where} redirect_stderr"):
        if "out_file" in files:
            files["error_file"] = files["out_file"]
        else:
            app["_redirect"] = True  # into corral's own out file, once the app is named
    app.update(files)


def _redirect(app: dict[str, Any]) -> None:
    """``redirect_stderr`` with ``stdout_logfile=AUTO``: both streams in corral's out file."""
    if app.pop("_redirect", False):
        out = str(home() / "logs" / f"{safe_name(app['name'])}-out.log")
        app["out_file"] = app["error_file"] = out
