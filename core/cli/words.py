"""The words of the ``corral`` CLI's tables, without rich: durations, sizes, CPU,
modes, uptimes, and names made safe for a terminal (:func:`printable`).

:mod:`corral.cli.render` draws with them; ``corral ls`` too, without importing rich
(:mod:`corral.cli.lsdraw`).
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the fast path
if TYPE_CHECKING:
    from typing import Any

STATUS_STYLES = {
    "online": "green",
    "stopped": "bright_black",
    "errored": "red",
    "launching": "yellow",
    "waiting restart": "yellow",
    "stopping": "yellow",
}

EMPTY_HINT = "No process is managed yet. Start one with: corral start app.py --name web"


def now_ms() -> int:
    return int(time.time() * 1000)


def human_duration(ms: float) -> str:
    """PM2's uptime words: ``5s``, ``3m``, ``2h``, ``4D``, ``2M``, ``1Y``."""
    seconds = max(int(ms // 1000), 0)
    for size, unit in ((31536000, "Y"), (2592000, "M"), (86400, "D"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def human_bytes(size: float) -> str:
    """``0b``, ``512b``, ``12.3kb``, ``12.3mb``, ``1.2gb`` as ``pm2 ls`` prints them."""
    size = float(size or 0)
    if size < 1024:
        return f"{int(size)}b"
    for unit in ("kb", "mb", "gb", "tb"):
        size /= 1024
        if size < 1024 or unit == "tb":
            break
    return f"{size:.1f}{unit}"


def human_cpu(cpu: float) -> str:
    return f"{round(float(cpu or 0), 1):g}%"


def health_word(health: dict[str, Any]) -> str:
    """The health plugin's ``health_status`` in a word: ``healthy``, ``unhealthy 2/3``
    (failures in a row / threshold), ``unknown``."""
    status = str(health.get("status") or "unknown")
    if status == "unhealthy":
        return f"unhealthy {health.get('failures', 0)}/{health.get('threshold', '?')}"
    return status


def mode_word(exec_mode: str) -> str:
    """``fork_mode`` -> ``fork``, ``cluster_mode`` -> ``cluster``."""
    return (exec_mode or "fork_mode").removesuffix("_mode")


def uptime_of(info: Any, now: int) -> str:
    """Time since the last spawn, for an online process only (``0`` otherwise, as PM2)."""
    if info.status != "online" or not info.pm_uptime:
        return "0"
    return human_duration(now - info.pm_uptime)


# Escape sequences a terminal acts on (colours, cursor moves, titles, hyperlinks,
# clipboard writes), ECMA-48: CSI, OSC, the DCS/SOS/PM/APC strings, 8-bit CSI, and
# the two-byte ones. An unterminated string runs to the end of the line, as it would.
_ESCAPES = (
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]"
)
_CONTROLS = r"[\x00-\x08\x0a-\x1f\x7f-\x9f]"  # all but \t
_COMPILED: list[Any] = []  # the two, compiled on first need


def _patterns() -> list[Any]:
    if not _COMPILED:
        import re  # deferred: `corral ls` loads re only with the json decoder, later

        _COMPILED.extend([re.compile(_ESCAPES), re.compile(_CONTROLS)])
    return _COMPILED


def printable(line: str) -> str:
    """An app's log line made safe for a terminal: escape sequences removed, a ``\\r``
    overwriting the start of the line as a terminal shows it (``10%\\r20%`` is
    ``20%``), every other control character but a tab shown as ``\\xNN``."""
    if line.isascii() and line.isprintable():
        return line  # nothing to remove or show (most names: no regex run)
    escapes, controls = _patterns()
    if "\x1b" in line or "\x9b" in line:
        line = escapes.sub("", line)
    if "\r" in line:
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part) :]
        line = shown
    return controls.sub(lambda m: f"\\x{ord(m[0]):02x}", line)
