"""watch's options: ``watch_options`` checked and normalized, and whether ``watch`` asks.

``ignore_watch``'s default is here too (:data:`DEFAULT_IGNORE`).
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Mapping
from typing import Any

import corral
from corral.api import parse_ms

DEFAULT_IGNORE = (".*", "node_modules", "__pycache__", "*.pyc")

_OPTION_KEYS = {
    "follow_symlinks": "follow_symlinks",
    "followSymlinks": "follow_symlinks",
    "use_polling": "use_polling",
    "usePolling": "use_polling",
    "interval": "interval",
}
# chokidar options PM2 passes through: accepted so ecosystem files load, and ignored
CHOKIDAR_KEYS = frozenset(
    "persistent ignored ignoreInitial cwd disableGlobbing binaryInterval alwaysStat depth"
    " awaitWriteFinish ignorePermissionErrors atomic".split()
)


def normalize_watch_options(value: Any) -> dict[str, Any]:
    """``watch_options`` with snake_case keys and checked values; raises OptionError."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)  # `--watch-options '{"usePolling": true}'`
    if not isinstance(value, Mapping):
        raise corral.OptionError(
            f"watch_options must be a mapping such as {{use_polling: true}}, got {value!r}",
            field="watch_options",
        )
    result: dict[str, Any] = {}
    for key, item in value.items():
        name = _OPTION_KEYS.get(key)
        if name is None and key in CHOKIDAR_KEYS:
            result[key] = item
        elif name is None:
            raise corral.OptionError(_unknown_key(key), field="watch_options")
        elif name == "interval":
            result[name] = parse_ms(item, "watch_options.interval")
            if result[name] < 10:
                raise corral.OptionError(
                    f"watch_options.interval must be at least 10 ms, got {item!r}",
                    field="watch_options",
                )
        else:
            result[name] = _boolean(item, f"watch_options.{name}")
    return result


def _unknown_key(key: Any) -> str:
    known = ["follow_symlinks", "use_polling", "interval"]
    close = difflib.get_close_matches(str(key), list(_OPTION_KEYS), n=1, cutoff=0.6)
    hint = f"did you mean {_OPTION_KEYS[close[0]]!r}? " if close else ""
    return f"watch_options: unknown key {key!r}: {hint}(known: {', '.join(known)})"


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise corral.OptionError(f"{name} must be true or false, got {value!r}", field="watch_options")


def watching(options: Mapping[str, Any]) -> bool:
    """Whether ``watch`` asks for watching: ``true`` or a list (``[]`` too, as in PM2)."""
    return options.get("watch") not in (None, False)
