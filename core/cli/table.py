"""What ``corral ls`` prints: the process table that fits the terminal, the mini
list (``ls -m``) and the JSON list (``ls --json``).

The table keeps ``id``, ``name`` and ``status`` whole at any width from 60 columns
up. When the full table is wider than the terminal, columns are dropped one by one
in :data:`DROP_ORDER` (PM2's condensed, then mini layout, one column at a time)
until it fits; a name still too long for the room left wraps inside its column
(folded, never cut with "…").
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from corral.cli.lsdraw import (  # the columns and their cells, once (rich-free)
    COLUMN_STYLES,
    COLUMNS,
    DROP_ORDER,
    KEPT,
    RIGHT,
    SORT_FIELDS,
    cells,
    empty_columns,
    field_of,
    fit_columns,
    parse_sort,
    pm2_env,
    sort_infos,
    user_of,
    watching_of,
)
from corral.cli.words import human_bytes, mode_word, now_ms, printable, uptime_of

__all__ = [
    "COLUMNS",
    "DROP_ORDER",
    "KEPT",
    "RIGHT",
    "SORT_FIELDS",
    "fit_columns",
    "ls_json",
    "mini_list",
    "parse_sort",
    "pm2_env",
    "process_table",
    "sort_infos",
    "terminal_width",
    "user_of",
    "watching_of",
]


_TEXTS = frozenset({"name", "namespace", "user", "status", "health", "watching"})


def _cells(info: Any, now: int) -> dict[str, str | Text]:
    """The cells of corral.cli.lsdraw, as rich draws them: a name, namespace, user,
    status or watching word as Text (no rich markup: a name "[/]" raised), the
    others as strings."""
    return {
        column: Text(text, style=style) if column in _TEXTS else text
        for column, (text, style) in cells(info, now).items()
    }


def process_table(
    infos: Sequence[Any],
    now: int | None = None,
    *,
    width: int | None = None,
    sort: str | None = None,
) -> Table:
    """The ``corral ls`` table, one row per process (by pm_id unless ``sort``), with
    the columns that fit in ``width`` (every column when None)."""
    now = now_ms() if now is None else now
    rows = [_cells(info, now) for info in sort_infos(infos, sort)]
    widths = {c: max([cell_len(c)] + [cell_len(str(r[c])) for r in rows]) for c in COLUMNS}
    empty = empty_columns([[str(r[c]) for c in COLUMNS] for r in rows])
    shown = fit_columns(widths, width, empty)
    table = Table(box=box.ROUNDED, header_style="bold", width=None)
    for column in shown:
        kept = column in ("id", "status")
        table.add_column(
            column,
            justify="right" if column in RIGHT else "left",
            style=COLUMN_STYLES.get(column),
            no_wrap=column != "name",
            overflow="fold",  # never "…": a name too long for the room wraps in its column
            min_width=widths[column] if kept else None,
        )
    for row in rows:
        table.add_row(*(row[c] for c in shown))
    return table


def mini_list(infos: Sequence[Any], now: int | None = None, *, sort: str | None = None) -> str:
    """``ls -m``: PM2's mini list (``pm2 ls -m``), a ``+--- name`` block per process,
    plain text for scripts."""
    now = now_ms() if now is None else now
    lines = []
    for info in sort_infos(infos, sort):
        lines += [
            f"+--- {printable(info.name)}",
            f"namespace : {printable(info.namespace)}",
            f"pid : {info.pid or 0}",
            f"corral id : {info.pm_id}",
            f"status : {info.status}",
            f"mode : {mode_word(info.exec_mode)}",
            f"restarted : {info.restart_time}",
            f"uptime : {uptime_of(info, now)}",
            f"memory usage : {human_bytes(info.memory)}",
            f"user : {user_of(info)}",
            f"error log : {field_of(info, 'pm_err_log_path') or '-'}",
            f"watching : {'yes' if field_of(info, 'watch') else 'no'}",
            f"PID file : {field_of(info, 'pm_pid_path') or '-'}",
            "",
        ]
    return "\n".join(lines)


def ls_json(infos: Sequence[Any], *, sort: str | None = None) -> str:
    """``ls --json``: the ``jlist`` list (one document), in ``--sort`` order."""
    return json.dumps([info.to_dict() for info in sort_infos(infos, sort)], default=str)


def terminal_width(console: Any) -> int | None:
    """The width the table must fit: the terminal's or ``COLUMNS``; None (every column)
    for a pipe without ``COLUMNS``."""
    if console.is_terminal or "COLUMNS" in os.environ:
        return console.width
    return None
