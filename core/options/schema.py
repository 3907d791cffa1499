"""App options: every option declared once, aliased and validated in one place.

The core declares PM2's options in :data:`corral.options.table.CORE_OPTIONS`;
plugins add theirs through the ``corral_app_options`` hook. An
:class:`OptionSchema` built from both turns what a user wrote (snake_case,
PM2's camelCase, PM2's aliases, numeric strings, ``"10s"``, ``"150M"``) into
one dict with canonical keys; the value conversions themselves are in
:mod:`corral.options.convert`.

Where PM2 drops a key silently, corral refuses it: an unknown key is an error
naming the closest known one, an option whose plugin is installed but not
loaded names the plugin, and a key PM2 has but corral does not use is accepted
with a warning. The core names no plugin's option: only on the error path are
the installed plugins asked (:func:`installed_plugin_options`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from corral.errors import OptionError, PluginError, shorten
from corral.options import typos
from corral.options.convert import CORE_CONVERTERS, convert_value
from corral.options.convert import (
    parse_bytes as parse_bytes,  # re-exported as before; corral.api is their home
)
from corral.options.convert import parse_ms as parse_ms

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
    # A plugin's own check of the converted value: returns the value to keep, or raises
    # ValueError (or OptionError) whose text says what is wrong and what is accepted.
    validate: Callable[[Any], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.type not in KINDS:
            raise PluginError(
                f"option {self.name!r} of {_owner(self)} has unknown type {self.type!r}: "
                f"use one of {', '.join(KINDS)}"
            )


def _validated(option: Option, value: Any) -> Any:
    assert option.validate is not None
    try:
        return option.validate(value)
    except OptionError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise OptionError(f"{option.name}: {exc}", field=option.name) from None


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

_IGNORED_KEYS = {key: name for name in PM2_IGNORED for key in _keys_of(name, ())}
# PM2's rule (lib/God/Methods.js: `kill_timeout || 1600`), kept, and said when it applies
KILL_TIMEOUT_ZERO = (
    "kill_timeout 0 means the default, 1600 ms, as in PM2: "
    "give 1 for the shortest grace before SIGKILL"
)
_ENV_KEY = re.compile(r"^env_\S+$")  # PM2's env_production etc.
ENTRY_POINT_GROUP = "corral"  # the entry-point group plugins are installed under


@cache
def _installed_keys() -> dict[str, tuple[str, str]]:
    """Every key an installed plugin's options mean -> (canonical name, plugin name).

    Imports each entry point of :data:`ENTRY_POINT_GROUP` and calls its
    ``corral_app_options`` without registering it. Only an unknown key gets here,
    so a valid app never imports a plugin it did not load.
    """
    from importlib import metadata  # deferred: ~10 ms of imports, on this error path only

    keys: dict[str, tuple[str, str]] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            declare = getattr(entry.load(), "corral_app_options", None)
            declared = list(declare() or ()) if callable(declare) else []
        except Exception:
            continue  # a plugin that fails to import names no option; `corral plugins` says why
        for option in declared:
            if isinstance(option, Option):
                for key in _keys_of(option.name, option.aliases):
                    keys.setdefault(key, (option.name, entry.name))
    return keys


def installed_plugin_options() -> dict[str, str]:
    """The options every installed plugin declares, loaded or not: name -> plugin.

    Imports every installed plugin (once per process): for errors and docs, not
    for the path a valid app takes.
    """
    return {name: plugin for name, plugin in _installed_keys().values()}


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
    return "" if key == name else f" (given as {shorten(key)})"


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
                    f"option key {shorten(key)} is declared twice: for {other.name!r} by "
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
            raise OptionError(
                f"app options must be a mapping of names to values, got {shorten(raw)}"
            )
        warnings: list[str] = []
        given: dict[str, list[tuple[str, Any]]] = {}
        extra_envs: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                raise OptionError(f"option names must be strings, got {shorten(key)}")
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
            if not isinstance(value, Mapping):
                raise OptionError(
                    f"{key} must be a mapping of names to values (PM2's env_<name>, the "
                    f"environment `--env {key[4:]}` selects), got {shorten(value)}: "
                    "write the variables in it, or remove the key",
                    field=key,
                )
            result[key] = convert_value("dict", key, value)
        if converted.get("kill_timeout") == 0:
            warnings.append(KILL_TIMEOUT_ZERO)
        return result, warnings

    def _convert(self, option: Option, value: Any, key: str | None = None) -> Any:
        try:
            special = CORE_CONVERTERS.get(option.name) if option.plugin == "core" else None
            converted = convert_value(option.type, option.name, value, option.minimum, special)
            if option.choices and converted not in option.choices:
                choices = ", ".join(repr(choice) for choice in option.choices)
                raise OptionError(
                    f"{option.name} must be one of {choices}, got {shorten(value)}",
                    field=option.name,
                )
            if option.validate is not None and converted is not None:
                converted = _validated(option, converted)
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
        if _IGNORED_KEYS.get(key) == "append_env_to_name":
            return  # read from the raw app by apps.prepare_app, where --env applies
        if key in _IGNORED_KEYS:
            warnings.append(f"ignoring PM2 option {shorten(key)}: corral has no use for it")
            return
        if key in _installed_keys():
            name, plugin = _installed_keys()[key]
            raise PluginError(
                f"{name}{_given_as(key, name)} needs the plugin {shorten(plugin)}, "
                "which is not loaded: install or enable it (CORRAL_PLUGINS)"
            )
        raise OptionError(self._unknown(key), field=key)

    def _unknown(self, key: str) -> str:
        return typos.unknown_option(key, self.closest(key))

    def closest(self, key: str) -> str | None:
        """The known key ``key`` is probably a typo of, or None (:mod:`corral.options.typos`)."""
        return typos.closest(key, [*self._keys, *_installed_keys()])

    def unknown_keys(self, raw: Mapping[str, Any]) -> list[str]:
        """Each key of ``raw`` that no loaded option, installed plugin's option or PM2
        key means (the installed plugins are asked only when some key is unknown)."""
        unknown = [
            key
            for key in raw
            if isinstance(key, str)
            and key not in self._keys
            and key not in _IGNORED_KEYS
            and not _ENV_KEY.match(key)
        ]
        return [key for key in unknown if key not in _installed_keys()] if unknown else []

    def check_unknown(self, apps: list[Any], *, labels: bool) -> None:
        """One OptionError naming every unknown key of every app of ``apps`` (a config
        file's, say), each with its closest known key when one is close; ``labels``
        names each app (``apps[1] (worker)``)."""
        found = [
            (index, raw, self.unknown_keys(raw))
            for index, raw in enumerate(apps)
            if isinstance(raw, Mapping)
        ]
        typos.refuse_unknown([f for f in found if f[2]], self.closest, labels=labels)
