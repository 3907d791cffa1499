"""What the ``corral`` CLI shows: the process table, describe panels, the log
files it tails and follows, and the monit view.

Everything here takes plain values (``ProcessInfo`` or anything with the same
attributes, a clock in epoch ms) and returns rich renderables or strings, so it
is tested without a daemon. Imported only by commands that print tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from corral.cli import words

# the CLI's words, without rich (corral.cli.words); importable from here as they always were
STATUS_STYLES, now_ms, printable = words.STATUS_STYLES, words.now_ms, words.printable
human_duration, human_bytes, human_cpu = words.human_duration, words.human_bytes, words.human_cpu
mode_word, uptime_of = words.mode_word, words.uptime_of

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


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


EMPTY_HINT = words.EMPTY_HINT  # `corral ls` of no process


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


def log_line(prefix: str, stream: str, line: str) -> Text:
    """``<prefix> | <line>``, the prefix coloured by stream (out green, err red)."""
    text = Text(f"{prefix} | ", style=STREAM_STYLES.get(stream, ""))
    text.append(line)
    return text


# -- log files ---------------------------------------------------------------
