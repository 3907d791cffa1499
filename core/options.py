"""App options: every option declared once, aliased and validated in one place.

The core declares PM2's options in :data:`CORE_OPTIONS`; plugins add theirs
through the ``corral_app_options`` hook. An :class:`OptionSchema` built from
both turns what a user wrote (snake_case, PM2's camelCase, PM2's aliases,
numeric strings, ``"10s"``, ``"150M"``) into one dict with canonical keys.

Where PM2 drops a key silently, corral refuses it: an unknown key is an error
naming the closest known one, an option whose plugin is not loaded names the
plugin, and a key PM2 has but corral does not use is accepted with a warning.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import OptionError, PluginError

# fmt: off
KINDS = ("str", "bool", "int", "number", "ms", "bytes", "list", "dict", "int_list",
         "bool_or_str", "bool_or_list", "any")
# fmt: on


@dataclass(frozen=True)
class Option:
    """One app option: its canonical name, kind, default and aliases."""

    name: str  # PM2's canonical snake_case key
    type: str  # one of KINDS
    default: Any = None
    aliases: tuple[str, ...] = ()  # camelCase of name and aliases is added automatically
    help: str = ""  # one line, for `corral start --help` and the docs
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    plugin: str | None = None  # "core" or the plugin that declared it

    def __post_init__(self) -> None:
        if self.type not in KINDS:
            raise PluginError(
                f"option {self.name!r} of {_owner(self)} has unknown type {self.type!r}: "
                f"use one of {', '.join(KINDS)}"
            )


def camel(name: str) -> str:
    """PM2's automatic alias: ``max_memory_restart`` -> ``maxMemoryRestart``.

    Later parts of one character stay lowercase, as in PM2 (``a_b_cd`` -> ``abCd``).
    """
    first, *rest = name.split("_")
    return first + "".join(p[0].upper() + p[1:] if len(p) > 1 else p for p in rest)


def _keys_of(name: str, aliases: Iterable[str]) -> list[str]:
    """Every key that means ``name``: itself, its aliases, and their camelCase."""
    keys = [name, camel(name)]
    for alias in aliases:
        keys += [alias, camel(alias)]
    return list(dict.fromkeys(keys))


# Keys in PM2's schema that corral accepts and ignores, so ecosystem files load unchanged.
PM2_IGNORED = frozenset(
    "vizion pmx automation windowsHide append_env_to_name trace disable_trace io v8"
    " event_loop_inspector deep_monitoring post_update name_prefix kill_retry_time install_url"
    " execute_command write username node_version version versioning".split()
)

# Options a first-party plugin provides: named in the error when that plugin is not loaded.
PLUGIN_OPTIONS = {
    "max_memory_restart": "memory",
    "watch": "watch",
    "ignore_watch": "watch",
    "watch_delay": "watch",
    "watch_options": "watch",
    "cron_restart": "cron",
    "cron_tz": "cron",
    "source_map_support": "sourcemap",
    "disable_source_map_support": "sourcemap",
}
_PLUGIN_ALIASES = {"cron_restart": ("cron",)}

# Cluster-mode options this corral does not support yet.
NOT_YET = frozenset({"wait_ready", "listen_timeout", "listen", "shutdown_with_message"})

_IGNORED_KEYS = {key: name for name in PM2_IGNORED for key in _keys_of(name, ())}
_PLUGIN_KEYS = {
    key: name for name in PLUGIN_OPTIONS for key in _keys_of(name, _PLUGIN_ALIASES.get(name, ()))
}
_NOT_YET_KEYS = {key: name for name in NOT_YET for key in _keys_of(name, ())}
_ENV_KEY = re.compile(r"^env_\S+$")  # PM2's env_production etc.


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
    _core("exec_mode", "str", "fork", help="execution mode: fork", choices=("fork",)),
    _core("instances", "int", 1, help="number of copies; 'max' or 0 = one per CPU, -1 = CPUs - 1"),
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
    _core("pid_file", "str", help="pid file path", aliases=("pid",)),
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
    _core("kill_timeout", "ms", 1600, help="grace after SIGINT before SIGKILL"),
    _core("force", "bool", False, help="start another copy of a script already running"),
    _core("port", "int", minimum=0, help="sets PORT in the app's environment"),
    _core("uid", "str", help="run as this user (a name, or a numeric id)", aliases=("user",)),
    _core("gid", "str", help="run as this group (a name, or a numeric id)"),
    _core("treekill", "bool", True, help="signal the whole process tree, not just the main pid"),
    _core("instance_var", "str", "NODE_APP_INSTANCE", help="variable holding the instance index"),
    _core("increment_var", "str", help="variable incremented for each instance"),
)
# fmt: on


# ---------------------------------------------------------------------------
# Values


class _Invalid(Exception):
    """A value that does not fit its kind; ``detail`` says why when it is not obvious."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


_EXPECTED = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "number": "a number",
    "ms": "milliseconds (an integer or '10s')",
    "bytes": "bytes (an integer or '150M'; K, M, G are powers of 1024, uppercase, no decimals)",
    "list": "a list of strings or one string split like a shell command line",
    "dict": "a mapping of names to values",
    "int_list": "an integer or a list of integers",
    "bool_or_str": "true, false or a string",
    "bool_or_list": "true, false, a string or a list of strings",
}
_BOOL_WORDS = {"true": True, "false": False}
_TIME_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_BYTE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_MS_FORM = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_BYTES_FORM = re.compile(r"(\d+)([KMG]?)")


def _number(value: Any) -> int | float:
    """A number, or a string that reads as one (PM2 parses numeric strings)."""
    if isinstance(value, bool):
        raise _Invalid
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise _Invalid from None
    else:
        raise _Invalid
    if isinstance(number, float) and not math.isfinite(number):
        raise _Invalid
    return number


def _integer(value: Any) -> int:
    number = _number(value)
    if isinstance(number, float) and not number.is_integer():
        raise _Invalid
    return int(number)


def _js_str(value: Any) -> str:
    """A scalar as JavaScript's String() writes it, so env and args read as under PM2."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _js_str(value)  # `name: 42` or `uid: 1000` in YAML
    raise _Invalid


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise _Invalid


def _to_ms(value: Any) -> int:
    if isinstance(value, str):
        match = _MS_FORM.fullmatch(value.strip())
        if match:
            return round(float(match[1]) * _TIME_UNITS[match[2]])
    number = _number(value)
    if number < 0:
        raise _Invalid
    return round(number)


def _to_bytes(value: Any) -> int:
    if isinstance(value, str):
        match = _BYTES_FORM.fullmatch(value.strip())
        if not match:
            raise _Invalid
        return int(match[1]) * _BYTE_UNITS[match[2]]
    number = _integer(value)
    if number < 0:
        raise _Invalid
    return number


def _to_list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:  # an unclosed quote
            raise _Invalid(str(exc)) from None
    if isinstance(value, (list, tuple)):
        if not all(isinstance(item, (str, int, float)) for item in value):
            raise _Invalid
        return [_js_str(item) for item in value]
    raise _Invalid


def _env_value(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value  # None asks to delete the variable
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))  # PM2 JSON-stringifies objects
    return _js_str(value)


def _to_dict(value: Any) -> dict[str, str | None]:
    if not isinstance(value, Mapping):
        raise _Invalid
    return {str(key): _env_value(item) for key, item in value.items()}


def _to_int_list(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [_integer(item) for item in value]
    return [_integer(value)]


def _to_bool_or_str(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() not in _BOOL_WORDS:
        return value
    return _to_bool(value)


def _to_bool_or_list(value: Any) -> bool | list[str]:
    if isinstance(value, str) and value.strip().lower() not in _BOOL_WORDS:
        return [value]  # one path or substring, not shell-split (PM2's first type is boolean)
    if isinstance(value, (list, tuple)):
        if not all(isinstance(item, str) for item in value):
            raise _Invalid
        return list(value)
    return _to_bool(value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "bool": _to_bool,
    "int": _integer,
    "number": _number,
    "ms": _to_ms,
    "bytes": _to_bytes,
    "list": _to_list,
    "dict": _to_dict,
    "int_list": _to_int_list,
    "bool_or_str": _to_bool_or_str,
    "bool_or_list": _to_bool_or_list,
    "any": lambda value: value,
}


def _convert(
    kind: str,
    field: str,
    value: Any,
    minimum: float | None = None,
    converter: Callable[[Any], Any] | None = None,
) -> Any:
    """``value`` as ``kind``, or an OptionError naming ``field`` and what it must be."""
    expected = _EXPECTED.get(kind, kind)
    if minimum is not None:
        expected += f" >= {minimum:g}"
    try:
        converted = (converter or _CONVERTERS[kind])(value)
    except _Invalid as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        raise OptionError(
            f"{field} must be {expected}, got {value!r}{detail}", field=field
        ) from None
    if minimum is not None and isinstance(converted, (int, float)) and converted < minimum:
        raise OptionError(f"{field} must be {expected}, got {value!r}", field=field)
    return converted


def parse_bytes(value: str | int, field: str = "value") -> int:
    """``150M`` -> 157286400: an integer, or digits with K, M or G (powers of 1024)."""
    return _convert("bytes", field, value)


def parse_ms(value: str | int | float, field: str = "value") -> int:
    """``"10s"`` -> 10000: milliseconds, or a number with ``ms``, ``s``, ``m`` or ``h``."""
    return _convert("ms", field, value)


# Core options whose values need more than their kind's converter.
def _instances(value: Any) -> int:
    return 0 if isinstance(value, str) and value.strip() == "max" else _integer(value)


def _exec_mode(value: Any) -> str:
    text = _to_str(value)
    mode = text.strip().removesuffix("_mode")
    if mode == "cluster":
        raise OptionError(
            f"exec_mode {value!r} is not supported yet: cluster mode arrives with the cluster "
            "feature; meanwhile use exec_mode 'fork' with instances N",
            field="exec_mode",
        )
    return mode if mode == "fork" else text


def _user_or_group(value: Any) -> int | str:
    text = _to_str(value)
    return int(text) if text.isdigit() else text  # a numeric id, as subprocess wants it


_CORE_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "instances": _instances,
    "exec_mode": _exec_mode,
    "uid": _user_or_group,
    "gid": _user_or_group,
}


def _truthy(value: Any) -> bool:
    """JavaScript truthiness, for PM2's "a truthy canonical key wins" ([] and {} are truthy)."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == value and value != 0
    return True


def _owner(option: Option) -> str:
    if option.plugin == "core":
        return "core"
    return f"plugin {option.plugin!r}" if option.plugin else "an unnamed plugin"


def _given_as(key: str, name: str) -> str:
    return "" if key == name else f" (given as {key!r})"


def _quoted(keys: list[str]) -> str:
    names = [repr(key) for key in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


# ---------------------------------------------------------------------------
# The schema


class OptionSchema:
    """The options the core and the loaded plugins declare, and their validation."""

    def __init__(self, options: Iterable[Option]) -> None:
        self._options: dict[str, Option] = {}
        self._keys: dict[str, str] = {}  # every accepted key -> canonical name
        self._defaults: dict[str, Any] = {}
        for option in options:
            self._add(option)

    def _add(self, option: Option) -> None:
        if option.name in self._options:
            other = self._options[option.name]
            raise PluginError(
                f"option {option.name!r} is declared twice: by {_owner(other)} "
                f"and by {_owner(option)}"
            )
        for key in _keys_of(option.name, option.aliases):
            if key in self._keys:
                other = self._options[self._keys[key]]
                raise PluginError(
                    f"option key {key!r} is declared twice: for {other.name!r} by "
                    f"{_owner(other)} and for {option.name!r} by {_owner(option)}"
                )
        for key in _keys_of(option.name, option.aliases):
            self._keys[key] = option.name
        self._options[option.name] = option
        if option.default is not None:
            try:
                self._defaults[option.name] = self._convert(option, option.default)
            except OptionError as exc:
                raise PluginError(f"default of {_owner(option)} is invalid: {exc}") from None

    def get(self, name: str) -> Option | None:
        """The option ``name`` means: a canonical name, an alias, or a camelCase form."""
        canonical = self._keys.get(name)
        return self._options[canonical] if canonical else None

    def __iter__(self) -> Iterator[Option]:
        return iter(self._options.values())

    def normalize(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Validate a new app's options: canonical keys, every default filled in.

        Returns the options and the warnings to show. ``script`` is required.
        Raises OptionError (or PluginError) at the first bad key or value.
        """
        options, warnings = self._validate(raw, fill=True)
        if "script" in self._options and not options.get("script"):
            raise OptionError(
                "script is required: the program to run (a path, a command on PATH, "
                "or a command line)",
                field="script",
            )
        return options, warnings

    def normalize_update(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Validate changed options (restart or reload): only the given keys come back.

        A key given as ``None`` comes back with its default.
        """
        return self._validate(raw, fill=False)

    def _validate(self, raw: Mapping[str, Any], *, fill: bool) -> tuple[dict[str, Any], list[str]]:
        if not isinstance(raw, Mapping):
            raise OptionError(f"app options must be a mapping of names to values, got {raw!r}")
        warnings: list[str] = []
        given: dict[str, list[tuple[str, Any]]] = {}
        extra_envs: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                raise OptionError(f"option names must be strings, got {key!r}")
            if key in self._keys:
                given.setdefault(self._keys[key], []).append((key, value))
            elif _ENV_KEY.match(key):
                extra_envs[key] = value
            else:
                self._refuse(key, value, warnings)

        converted: dict[str, Any] = {}  # in the order the user wrote, so the first error is theirs
        for name, pairs in given.items():
            key, value = self._pick(name, pairs, warnings)
            if value is not None:
                converted[name] = self._convert(self._options[name], value, key)
        result: dict[str, Any] = {}
        for name in self._options:
            if name in converted:
                result[name] = converted[name]
            elif fill or name in given:
                result[name] = copy.deepcopy(self._defaults.get(name))
        for key, value in extra_envs.items():
            result[key] = _convert("dict", key, value)
        return result, warnings

    def _convert(self, option: Option, value: Any, key: str | None = None) -> Any:
        try:
            special = _CORE_CONVERTERS.get(option.name) if option.plugin == "core" else None
            converted = _convert(option.type, option.name, value, option.minimum, special)
            if option.choices and converted not in option.choices:
                choices = ", ".join(repr(choice) for choice in option.choices)
                raise OptionError(
                    f"{option.name} must be one of {choices}, got {value!r}", field=option.name
                )
        except OptionError as exc:
            if key is None or key == option.name:
                raise
            raise OptionError(f"{exc}{_given_as(key, option.name)}", field=option.name) from None
        return converted

    @staticmethod
    def _pick(name: str, pairs: list[tuple[str, Any]], warnings: list[str]) -> tuple[str, Any]:
        """PM2's rule when a key and its aliases are all given: a truthy canonical key wins."""
        canonical = next((pair for pair in pairs if pair[0] == name), None)
        if canonical is not None and _truthy(canonical[1]):
            chosen = canonical
        else:
            chosen = next((pair for pair in pairs if _truthy(pair[1])), canonical or pairs[0])
        if any(value != chosen[1] for _, value in pairs):
            keys = [key for key, _ in pairs]
            both = "both" if len(keys) == 2 else "all"
            warnings.append(
                f"{_quoted(keys)} {both} set {name}, to different values: using {chosen[0]!r}"
            )
        return chosen

    def _refuse(self, key: str, value: Any, warnings: list[str]) -> None:
        """A key no loaded option declares: warn for PM2's unused keys, else raise."""
        if key in _IGNORED_KEYS:
            warnings.append(f"ignoring PM2 option {key!r}: corral has no use for it")
            return
        if key in _PLUGIN_KEYS:
            name = _PLUGIN_KEYS[key]
            raise PluginError(
                f"{name}{_given_as(key, name)} needs the plugin {PLUGIN_OPTIONS[name]!r}, "
                "which is not loaded: install or enable it (CORRAL_PLUGINS)"
            )
        if key in _NOT_YET_KEYS:
            name = _NOT_YET_KEYS[key]
            message = f"{name} belongs to cluster mode, which this corral does not support yet"
            if not _truthy(value):  # `wait_ready: false` asks for nothing corral lacks
                warnings.append(f"ignoring {key} ({json.dumps(value)}): {message}")
                return
            raise OptionError(message + _given_as(key, name), field=name)
        raise OptionError(self._unknown(key), field=key)

    def _unknown(self, key: str) -> str:
        known = {k.lower(): k for k in [*_PLUGIN_KEYS, *self._keys]}
        close = difflib.get_close_matches(key.lower(), list(known), n=1)
        if close:
            return f"unknown option {key!r}: did you mean {known[close[0]]!r}?"
        return f"unknown option {key!r}; see `corral start --help` for the list"
