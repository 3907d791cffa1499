"""The ``corral ls`` table drawn without rich: the same characters (and colours) rich
draws for it, in a few milliseconds for a thousand apps instead of a second.

:func:`draw` gives the text when every shown column fits at its natural width and
every cell is plain ASCII; otherwise it gives None and :mod:`corral.cli.table` draws
with rich (a name wrapped in its column, wide characters, a console without colour
codes of its own). :func:`plain_width` tells, without importing rich, when rich would
print no escape codes at all (a pipe), so ``corral ls | ...`` never loads rich;
:func:`colour_width`, when it would colour a terminal with the codes draw writes.
The columns, their order, what is dropped first and the ``--sort`` fields are here,
once: :mod:`corral.cli.table` builds rich's table from the same cells.
"""

from __future__ import annotations

import os
import sys

from corral.cli.words import (
    STATUS_STYLES,
    health_word,
    human_bytes,
    human_cpu,
    mode_word,
    now_ms,
    printable,
    uptime_of,
)
from corral.errors import OptionError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the fast path
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

# Every column, left to right as shown.
COLUMNS = (
    "id",
    "name",
    "namespace",
    "mode",
    "pid",
    "uptime",
    "↺",
    "status",
    "health",
    "cpu",
    "mem",
    "user",
    "watching",
)
# Dropped first to last when the table is too wide; id, name and status never are.
DROP_ORDER = (
    "watching", "namespace", "user", "pid", "uptime", "mode", "↺", "health", "cpu", "mem"
)  # fmt: skip
OPTIONAL = ("health",)  # shown only when some row has a value (the health plugin's)
HEALTH_STYLES = {"healthy": "green", "unhealthy": "red", "unknown": "bright_black"}
KEPT = ("id", "name", "status")
RIGHT = {"id", "pid", "uptime", "↺", "cpu", "mem"}
COLUMN_STYLES = {"id": "bold", "name": "bold cyan"}  # the whole cell, padding too
HEADER_STYLE = "bold"
PIPE_WIDTH = 200  # as corral.cli.render's: a pipe's table keeps whole names

# `ls --sort FIELD[:asc|:desc]`: PM2's fields, and restarts
SORT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "id": lambda i: i.pm_id,
    "name": lambda i: i.name,
    "namespace": lambda i: i.namespace,
    "pid": lambda i: i.pid or 0,
    "cpu": lambda i: i.cpu or 0,
    "mem": lambda i: i.memory or 0,
    "memory": lambda i: i.memory or 0,
    "restarts": lambda i: i.restart_time,
    "uptime": lambda i: i.pm_uptime if i.status == "online" else 0,
    "status": lambda i: i.status,
}

# SGR codes of the styles the table uses (rich writes the same for its standard,
# 256-colour and truecolor systems)
_SGR = {"bold": "1", "cyan": "36", "green": "32", "red": "31", "yellow": "33", "bright_black": "90"}
_BOX = {"top": "╭┬╮", "head": "├┼┤", "bottom": "╰┴╯"}


def pm2_env(info: Any) -> dict[str, Any]:
    """The instance's ``pm2_env`` (a ProcessInfo, or anything with ``to_dict()``)."""
    env = getattr(info, "pm2_env", None)
    if isinstance(env, dict):
        return env
    return info.to_dict().get("pm2_env", {})


def field_of(info: Any, key: str) -> Any:
    """One ``pm2_env`` field: read in place from a ProcessInfo (no env fetched)."""
    read = getattr(info, "field", None)
    return read(key) if callable(read) else pm2_env(info).get(key)


def user_of(info: Any) -> str:
    """The user the app runs as: its ``uid`` option, else the daemon's user."""
    return str(field_of(info, "uid") or field_of(info, "username") or "-")


def watching_of(info: Any) -> str:
    """PM2's watching column: ``enabled`` while ``pm2_env.watch`` is on, else ``disabled``."""
    return "enabled" if field_of(info, "watch") else "disabled"


def health_of(info: Any) -> str:
    """The health plugin's word: ``healthy``, ``unhealthy 2/3``, ``unknown``; empty
    for an app it does not check."""
    health = field_of(info, "health_status")
    return health_word(health) if isinstance(health, dict) else ""


def parse_sort(text: str | None) -> tuple[str, bool]:
    """``name``, ``cpu:desc`` -> (field, descending); a clear error for anything else."""

    if not text:
        return "id", False
    field, _, order = text.strip().lower().partition(":")
    if field not in SORT_FIELDS or order not in ("", "asc", "desc"):
        fields = "|".join(f for f in SORT_FIELDS if f != "memory")
        raise OptionError(
            f"--sort takes FIELD[:asc|:desc] with FIELD one of {fields}, got {text!r}",
            field="sort",
        )
    return field, order == "desc"


def sort_infos(infos: Sequence[Any], sort: str | None = None) -> list[Any]:
    """The processes in ``--sort`` order; ties, and no ``sort``, by pm_id."""
    field, descending = parse_sort(sort)
    ordered = sorted(infos, key=lambda i: i.pm_id)
    return sorted(ordered, key=SORT_FIELDS[field], reverse=descending)


def row_texts(info: Any, now: int) -> tuple[str, ...]:
    """Each column's text for one process, in :data:`COLUMNS` order."""
    return (
        str(info.pm_id),
        printable(info.name),
        printable(info.namespace),
        mode_word(info.exec_mode),
        str(info.pid or 0),
        uptime_of(info, now),
        str(info.restart_time),
        info.status,
        health_of(info),
        human_cpu(info.cpu),
        human_bytes(info.memory),
        printable(user_of(info)),
        watching_of(info),
    )


def cells(info: Any, now: int) -> dict[str, tuple[str, str]]:
    """Each column's text and style for one process (rich Text made of them in table)."""
    return _styled(row_texts(info, now))


def _styled(texts: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """The cells of :func:`row_texts`, each with its style."""
    row = {column: (text, "") for column, text in zip(COLUMNS, texts, strict=True)}
    status, watching, health = row["status"][0], row["watching"][0], row["health"][0]
    row["status"] = (status, STATUS_STYLES.get(status, ""))
    row["health"] = (health, HEALTH_STYLES.get(health.split(" ")[0], ""))
    row["watching"] = (watching, "green" if watching == "enabled" else "bright_black")
    return row


def fit_columns(widths: dict[str, int], width: int | None, empty: Sequence[str] = ()) -> list[str]:
    """The columns to show: every one that fits in ``width`` (all when None), dropped
    in :data:`DROP_ORDER`, but none of ``empty``. ``widths`` holds each column's widest cell."""
    shown = [c for c in COLUMNS if c not in empty]

    def total() -> int:  # a rounded box: one space each side of a cell, a rule between
        return sum(widths[c] + 2 for c in shown) + len(shown) + 1

    for column in DROP_ORDER:
        if width is None or total() <= width:
            break
        if column in shown:
            shown.remove(column)
    return shown


def empty_columns(rows: Sequence[Sequence[Any]]) -> list[str]:
    """The :data:`OPTIONAL` columns no row has a value in (rows of cells in COLUMNS order)."""
    return [c for c in OPTIONAL if not any(row[COLUMNS.index(c)] for row in rows)]


def plain_width() -> tuple[int, int | None] | None:
    """When rich would print to stdout with no escape codes (not a terminal, and no
    ``FORCE_COLOR`` / ``TTY_COMPATIBLE`` saying otherwise): the console's width and
    the width the table must fit (None: every column), as corral.cli.render's
    console and corral.cli.table.terminal_width give them; else None."""
    if sys.platform == "win32" or "FORCE_COLOR" in os.environ:
        return None
    if os.environ.get("TTY_COMPATIBLE") == "1" or "JUPYTER_COLUMNS" in os.environ:
        return None
    try:
        if sys.stdout.isatty():
            return None
    except ValueError:
        return None
    columns = os.environ.get("COLUMNS")
    if columns is None:
        return PIPE_WIDTH, None
    return (int(columns), int(columns)) if columns.isdigit() else None


def colour_width() -> int | None:
    """When stdout is a terminal rich would colour with the escape codes :func:`draw`
    writes (no ``NO_COLOR``, ``FORCE_COLOR``, ``TTY_COMPATIBLE``, dumb terminal): the
    width its console takes, as rich 13-15 work it out (``COLUMNS``, else the size of
    the terminal on stdin, stdout or stderr, else 80); else None."""
    env = os.environ
    if sys.platform == "win32" or "FORCE_COLOR" in env or "TTY_COMPATIBLE" in env:
        return None
    if "JUPYTER_COLUMNS" in env or env.get("NO_COLOR", "") != "":
        return None
    if env.get("TERM", "").lower() in ("dumb", "unknown"):
        return None
    try:
        if not sys.stdout.isatty():
            return None
    except ValueError:
        return None
    columns = env.get("COLUMNS")
    if columns is not None:
        return int(columns) if columns.isdigit() and int(columns) > 0 else None
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns or 80
        except (ValueError, OSError):
            continue
    return 80


def draw(
    infos: Sequence[Any],
    console_width: int,
    fit_width: int | None,
    *,
    colour: bool = False,
    sort: str | None = None,
    now: int | None = None,
) -> str | None:
    """The table as rich prints it (``colour``: with its escape codes), or None when
    rich must draw it (see the module's docstring)."""
    now = now_ms() if now is None else now
    rows = [row_texts(info, now) for info in sort_infos(infos, sort)]
    for row in rows:
        joined = "".join(row)
        if not joined.isascii() or "\t" in joined:
            return None  # wide characters, tabs: rich measures them
    widths = {c: 1 if c == "↺" else len(c) for c in COLUMNS}
    if rows:
        for column, texts in zip(COLUMNS, zip(*rows, strict=True), strict=True):
            widths[column] = max(widths[column], *map(len, texts))
    shown = fit_columns(widths, fit_width, empty_columns(rows))
    if sum(widths[c] + 2 for c in shown) + len(shown) + 1 > console_width:
        return None  # a column must shrink: rich wraps the names
    paint = _painter(colour)
    lines = [_rule("top", shown, widths)]
    lines.append(_line([(c, c, HEADER_STYLE, HEADER_STYLE) for c in shown], widths, paint))
    lines.append(_rule("head", shown, widths))
    if colour:
        for texts in rows:
            row = _styled(texts)
            line = []
            for c in shown:
                text, style = row[c]
                column_style = COLUMN_STYLES.get(c, "")
                line.append((c, text, column_style, _join(column_style, style)))
            lines.append(_line(line, widths, paint))
    else:  # the same line as _line draws, without a call per cell
        where = [COLUMNS.index(c) for c in shown]
        justify = [str.rjust if c in RIGHT else str.ljust for c in shown]
        sizes = [widths[c] for c in shown]
        plan = list(zip(where, justify, sizes, strict=True))
        for texts in rows:
            parts = [fit(texts[i], size) for i, fit, size in plan]
            lines.append("│ " + " │ ".join(parts) + " │")
    lines.append(_rule("bottom", shown, widths))
    return "\n".join(lines) + "\n"


def _rule(where: str, shown: list[str], widths: dict[str, int]) -> str:
    left, middle, right = _BOX[where]
    return left + middle.join("─" * (widths[c] + 2) for c in shown) + right


def _line(
    cells_: list[tuple[str, str, str, str]],
    widths: dict[str, int],
    paint: Callable[[str, str], str],
) -> str:
    """One row: each cell ``(column, text, padding's style, text's style)``."""
    parts = []
    for column, text, pad_style, style in cells_:
        width = widths[column]
        text = text.rjust(width) if column in RIGHT else text.ljust(width)
        pad = paint(" ", pad_style)
        parts.append(pad + paint(text, style) + pad)
    return "│" + "│".join(parts) + "│"


def _join(column_style: str, style: str) -> str:
    return f"{column_style} {style}".strip()


def _painter(colour: bool) -> Callable[[str, str], str]:
    if not colour:
        return lambda text, style: text
    codes: dict[str, str] = {}

    def paint(text: str, style: str) -> str:
        if not style:
            return text
        sgr = codes.get(style)
        if sgr is None:
            words = style.split()
            attributes = [_SGR[w] for w in words if w == "bold"]
            sgr = codes[style] = ";".join(attributes + [_SGR[w] for w in words if w != "bold"])
        return f"\x1b[{sgr}m{text}\x1b[0m"

    return paint


COLOUR_SYSTEMS = ("standard", "256", "truecolor")  # rich's that write the codes above
