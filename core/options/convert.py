"""Option values: what a user wrote, turned into the kind its option declares.

Each kind in :data:`corral.options.schema.KINDS` has one converter here. They accept
what PM2 accepts: numeric strings for numbers, ``"10s"`` for milliseconds,
``"150M"`` for bytes, a string shell-split for a list, and scalars written as
JavaScript's ``String()`` would (``true``, ``2`` for ``2.0``), so env values
and arguments read as they do under PM2. :func:`convert_value` wraps them and
turns a value that does not fit into an :class:`OptionError` naming the field
and what it must be.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from typing import Any

from corral.errors import OptionError, shorten
from corral.options.secrets import mask_env, mask_text


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


def _text(value: str) -> str:
    """``value`` if the OS can take it: no NUL, no lone surrogate but os.fsdecode's escapes."""
    if "\0" in value:
        raise _Invalid("it contains a NUL character")
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise _Invalid("it contains a lone surrogate, which is no character") from None
    return value


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return _text(value)
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
            return shlex.split(_text(value))
        except ValueError as exc:  # an unclosed quote
            raise _Invalid(str(exc)) from None
    if isinstance(value, (list, tuple)):
        if not all(isinstance(item, (str, int, float)) for item in value):
            raise _Invalid
        return [_text(_js_str(item)) for item in value]
    raise _Invalid


def _env_value(value: Any) -> str | None:
    if value is None:
        return value  # None asks to delete the variable
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))  # PM2 JSON-stringifies objects
    return _js_str(value)


def _to_dict(value: Any) -> dict[str, str | None]:
    if not isinstance(value, Mapping):
        raise _Invalid
    return {_text(str(key)): _env_value(item) for key, item in value.items()}


def _to_int_list(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [_integer(item) for item in value]
    return [_integer(value)]


def _to_bool_or_str(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() not in _BOOL_WORDS:
        return _text(value)
    return _to_bool(value)


def _to_bool_or_list(value: Any) -> bool | list[str]:
    if isinstance(value, str) and value.strip().lower() not in _BOOL_WORDS:
        # one path or substring, not shell-split (PM2's first type is boolean)
        return [_text(value)]
    if isinstance(value, (list, tuple)):
        if not all(isinstance(item, str) for item in value):
            raise _Invalid
        return [_text(item) for item in value]
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


def convert_value(
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
            f"{field} must be {expected}, got {_shown(value)}{detail}", field=field
        ) from None
    if minimum is not None and isinstance(converted, (int, float)) and converted < minimum:
        raise OptionError(f"{field} must be {expected}, got {_shown(value)}", field=field)
    return converted


def _shown(value: Any) -> str:
    """``repr(value)`` for an error message, its secrets masked (an env's, a URL's password)."""
    if isinstance(value, Mapping):
        value = mask_env({str(k): v for k, v in value.items()})
    return mask_text(shorten(value))


def parse_bytes(value: str | int, field: str = "value") -> int:
    """``150M`` -> 157286400: an integer, or digits with K, M or G (powers of 1024)."""
    return convert_value("bytes", field, value)


def parse_ms(value: str | int | float, field: str = "value") -> int:
    """``"10s"`` -> 10000: milliseconds, or a number with ``ms``, ``s``, ``m`` or ``h``."""
    return convert_value("ms", field, value)


# -- core options whose values need more than their kind's converter --------


def _instances(value: Any) -> int:
    return 0 if isinstance(value, str) and value.strip() == "max" else _integer(value)


def _exec_mode(value: Any) -> str:
    text = _to_str(value)
    mode = text.strip().removesuffix("_mode")
    return mode if mode in ("fork", "cluster") else text


def _port(value: Any) -> int:
    port = _integer(value)
    if not 0 <= port <= 65535:
        raise _Invalid("a TCP port is 0 to 65535")
    return port


def _user_or_group(value: Any) -> int | str:
    text = _to_str(value)
    return int(text) if text.isascii() and text.isdigit() else text  # a numeric id


def signal_of(value: Any) -> signal.Signals | None:
    """``SIGTERM``, ``term``, ``15`` -> ``Signals.SIGTERM``; None when it names no signal."""
    text = str(value).strip().upper()
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals[name]
    except (KeyError, ValueError):
        return None


def _signal_name(value: Any) -> str:
    found = signal_of(_to_str(value))
    if found is None:
        raise OptionError(
            f"kill_signal {shorten(value)} is not a signal: use a name such as SIGTERM or SIGINT, "
            "or its number (see `kill -l`)",
            field="kill_signal",
        )
    return found.name


# By option name; OptionSchema passes one to convert_value only for options the core declares.
CORE_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "kill_signal": _signal_name,
    "instances": _instances,
    "exec_mode": _exec_mode,
    "port": _port,
    "uid": _user_or_group,
    "gid": _user_or_group,
}
