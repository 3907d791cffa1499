"""logrotate's daemon-wide settings: PM2's keys and defaults, parsed and stored in
``$CORRAL_HOME/logrotate.json``."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from croniter import croniter

import corral
from corral.api import date_formatter, parse_bytes

SETTINGS_FILE = "logrotate.json"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The daemon-wide settings, PM2's defaults."""

    max_size: int = 10 * 1024 * 1024
    retain: int | str = 30  # "all" keeps every rotated file
    compress: bool = False
    date_format: str = "YYYY-MM-DD_HH-mm-ss"
    rotate_interval: str | None = "0 0 * * *"
    rotate_module: bool = True
    worker_interval: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


KEYS = tuple(f.name for f in dataclasses.fields(Settings))
PM2_KEYS = {
    "dateFormat": "date_format",
    "rotateInterval": "rotate_interval",
    "rotateModule": "rotate_module",
    "workerInterval": "worker_interval",
}


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise corral.OptionError(f"logrotate {key} must be true or false, got {value!r}", field=key)


def retain_value(value: Any, key: str = "retain") -> int | str:
    """An integer >= 0, or ``"all"`` to keep every rotated file."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    text = str(value).strip()
    if not isinstance(value, bool) and text.isdigit():
        return int(text)
    raise corral.OptionError(
        f"{key} must be an integer >= 0 or 'all' (keep every rotated file), got {value!r}",
        field=key,
    )


def _date_format(value: Any) -> str:
    text = str(value)
    if not text or "/" in text or "\0" in text:
        raise corral.OptionError(
            f"logrotate date_format must be a non-empty format without '/', got {value!r}",
            field="date_format",
        )
    try:
        date_formatter(text)
    except corral.OptionError as exc:
        message = str(exc).replace("log_date_format", "logrotate date_format", 1)
        raise corral.OptionError(message, field="date_format") from None
    return text


def _cron(value: Any) -> str | None:
    if value is None or value is False or str(value).strip().lower() in ("", "off", "false"):
        return None
    text = " ".join(str(value).split())
    fields = len(text.split())
    if not (text.startswith("@") or fields in (5, 6)) or not croniter.is_valid(
        text, second_at_beginning=True
    ):
        raise corral.OptionError(
            f"logrotate rotate_interval must be a cron expression ('0 0 * * *'; six fields "
            f"put seconds first) or 'off', got {value!r}",
            field="rotate_interval",
        )
    return text


def _seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if isinstance(value, bool) or not seconds > 0:
        raise corral.OptionError(
            f"logrotate worker_interval must be a number of seconds > 0, got {value!r}",
            field="worker_interval",
        )
    return seconds


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "max_size": lambda v: parse_bytes(v, "logrotate max_size"),
    "retain": lambda v: retain_value(v, "logrotate retain"),
    "compress": lambda v: _bool("compress", v),
    "date_format": _date_format,
    "rotate_interval": _cron,
    "rotate_module": lambda v: _bool("rotate_module", v),
    "worker_interval": _seconds,
}


def parse_setting(key: str, value: Any) -> tuple[str, Any]:
    """``(canonical key, converted value)``; PM2's camelCase keys and a ``logrotate:`` or
    ``pm2-logrotate:`` prefix are accepted. Raises OptionError naming the key."""
    name = key.strip().removeprefix("pm2-logrotate:").removeprefix("logrotate:")
    name = PM2_KEYS.get(name, name)
    if name not in _PARSERS:
        close = difflib.get_close_matches(name, [*KEYS, *PM2_KEYS], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(KEYS)})"
        raise corral.OptionError(f"unknown logrotate setting {key!r}{hint}", field=key)
    return name, _PARSERS[name](value)


def read_settings(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The settings stored in ``path`` (converted) and the errors of those left out."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}, []
    except (OSError, ValueError) as exc:
        return {}, [f"{path}: {exc}: using the defaults"]
    if not isinstance(raw, dict):
        return {}, [f"{path}: expected a JSON object: using the defaults"]
    stored, errors = {}, []
    for key, value in raw.items():
        try:
            name, converted = parse_setting(str(key), value)
        except corral.OptionError as exc:
            errors.append(f"{path}: {exc}: using the default")
        else:
            stored[name] = converted
    return stored, errors


def write_settings(path: Path, stored: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
