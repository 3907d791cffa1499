"""What the ``corral`` CLI shows: the process table, describe panels, the log
files it tails and follows, and the monit view.

Everything here takes plain values (``ProcessInfo`` or anything with the same
attributes, a clock in epoch ms) and returns rich renderables or strings, so it
is tested without a daemon. Imported only by commands that print tables.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    "online": "green",
    "stopped": "bright_black",
    "errored": "red",
    "launching": "yellow",
    "waiting restart": "yellow",
    "stopping": "yellow",
}
STREAM_STYLES = {"out": "green", "err": "red", "corral": "cyan"}

# The widest a table gets when stdout is not a terminal, so piped output keeps
# whole names instead of rich's default 80 columns.
PIPE_WIDTH = 200


class PipeConsole(Console):
    """rich's Console, except that a reader closing the pipe early ends the command
    through corral's handler (exit 0, quietly), not rich's ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def make_console(*, stderr: bool = False) -> Console:
    """A console that colours a terminal and prints plain text to a pipe."""
    console = PipeConsole(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = PipeConsole(stderr=stderr, highlight=False, width=PIPE_WIDTH)
    return console


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


def mode_word(exec_mode: str) -> str:
    """``fork_mode`` -> ``fork``, ``cluster_mode`` -> ``cluster``."""
    return (exec_mode or "fork_mode").removesuffix("_mode")


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def uptime_of(info: Any, now: int) -> str:
    """Time since the last spawn, for an online process only (``0`` otherwise, as PM2)."""
    if info.status != "online" or not info.pm_uptime:
        return "0"
    return human_duration(now - info.pm_uptime)


EMPTY_HINT = "No process is managed yet. Start one with: corral start app.py --name web"


def plugins_table(plugins: Iterable[dict]) -> Table:
    table = Table(box=box.ROUNDED, header_style="bold")
    for column in ("name", "dist", "version", "errors", "dropped"):
        table.add_column(column, no_wrap=True)
    for plugin in plugins:
        errors = len(plugin.get("errors") or [])
        dropped = sum((plugin.get("dropped") or {}).values())
        table.add_row(
            plugin.get("name", ""),
            plugin.get("dist") or "-",
            plugin.get("version") or "-",
            Text(str(errors), style="red" if errors else ""),
            Text(str(dropped), style="yellow" if dropped else ""),
        )
    return table


# Escape sequences a terminal acts on (colours, cursor moves, titles, hyperlinks,
# clipboard writes), ECMA-48: CSI, OSC, the DCS/SOS/PM/APC strings, 8-bit CSI, and
# the two-byte ones. An unterminated string runs to the end of the line, as it would.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # all but \t


def printable(line: str) -> str:
    """An app's log line made safe for a terminal: escape sequences removed, a ``\\r``
    overwriting the start of the line as a terminal shows it (``10%\\r20%`` is
    ``20%``), every other control character but a tab shown as ``\\xNN``."""
    if "\x1b" in line or "\x9b" in line:
        line = _ESCAPES.sub("", line)
    if "\r" in line:
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part) :]
        line = shown
    return _CONTROLS.sub(lambda m: f"\\x{ord(m[0]):02x}", line)


def log_line(prefix: str, stream: str, line: str) -> Text:
    """``<prefix> | <line>``, the prefix coloured by stream (out green, err red)."""
    text = Text(f"{prefix} | ", style=STREAM_STYLES.get(stream, ""))
    text.append(line)
    return text


# -- log files ---------------------------------------------------------------
