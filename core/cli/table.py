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
from collections.abc import Callable, Sequence
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from corral.cli.render import (
    human_bytes,
    human_cpu,
    mode_word,
    now_ms,
    printable,
    status_text,
    uptime_of,
)
from corral.errors import OptionError

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
    "cpu",
    "mem",
    "user",
    "watching",
)
# Dropped first to last when the table is too wide; id, name and status never are.
DROP_ORDER = ("watching", "namespace", "user", "pid", "uptime", "mode", "↺", "cpu", "mem")
KEPT = ("id", "name", "status")
RIGHT = {"id", "pid", "uptime", "↺", "cpu", "mem"}

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


def pm2_env(info: Any) -> dict[str, Any]:
    """The instance's ``pm2_env`` (a ProcessInfo, or anything with ``to_dict()``)."""
    env = getattr(info, "pm2_env", None)
    if isinstance(env, dict):
        return env
    return info.to_dict().get("pm2_env", {})


def user_of(info: Any) -> str:
    """The user the app runs as: its ``uid`` option, else the daemon's user."""
    env = pm2_env(info)
    return str(env.get("uid") or env.get("username") or "-")


def watching_of(info: Any) -> str:
    """PM2's watching column: ``enabled`` while ``pm2_env.watch`` is on, else ``disabled``."""
    return "enabled" if pm2_env(info).get("watch") else "disabled"


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


def _cells(info: Any, now: int) -> dict[str, str | Text]:
    return {
        "id": str(info.pm_id),
        "name": Text(printable(info.name)),  # Text: a name is no rich markup ("[/]" raised)
        "namespace": Text(printable(info.namespace)),
        "mode": mode_word(info.exec_mode),
        "pid": str(info.pid or 0),
        "uptime": uptime_of(info, now),
        "↺": str(info.restart_time),
        "status": status_text(info.status),
        "cpu": human_cpu(info.cpu),
        "mem": human_bytes(info.memory),
        "user": Text(printable(user_of(info))),
        "watching": Text(
            watching_of(info), style="green" if watching_of(info) == "enabled" else "bright_black"
        ),
    }


def fit_columns(widths: dict[str, int], width: int | None) -> list[str]:
    """The columns to show: every one that fits in ``width`` (all when None), dropped
    in :data:`DROP_ORDER`. ``widths`` holds each column's widest cell."""
    shown = list(COLUMNS)

    def total() -> int:  # a rounded box: one space each side of a cell, a rule between
        return sum(widths[c] + 2 for c in shown) + len(shown) + 1

    for column in DROP_ORDER:
        if width is None or total() <= width:
            break
        shown.remove(column)
    return shown


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
    shown = fit_columns(widths, width)
    table = Table(box=box.ROUNDED, header_style="bold", width=None)
    for column in shown:
        kept = column in ("id", "status")
        table.add_column(
            column,
            justify="right" if column in RIGHT else "left",
            style="bold cyan" if column == "name" else "bold" if column == "id" else None,
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
        env = pm2_env(info)
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
            f"error log : {env.get('pm_err_log_path') or '-'}",
            f"watching : {'yes' if env.get('watch') else 'no'}",
            f"PID file : {env.get('pm_pid_path') or '-'}",
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
