"""What the ``corral`` CLI shows: the process table, describe panels, the log
files it tails and follows, and the monit view.

Everything here takes plain values (``ProcessInfo`` or anything with the same
attributes, a clock in epoch ms) and returns rich renderables or strings, so it
is tested without a daemon. Imported only by commands that print tables.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .logtail import FollowedFile, open_log, tail_lines  # noqa: F401 (re-exported)
from .secrets import mask, mask_args

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


def make_console(*, stderr: bool = False) -> Console:
    """A console that colours a terminal and prints plain text to a pipe."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, width=PIPE_WIDTH)
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


def process_table(infos: Sequence[Any], now: int | None = None) -> Table:
    """The ``corral ls`` table: one row per process, ordered by pm_id."""
    now = now_ms() if now is None else now
    table = Table(box=box.ROUNDED, header_style="bold")
    table.add_column("id", justify="right", style="bold")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("namespace", no_wrap=True)
    table.add_column("mode")
    table.add_column("pid", justify="right")
    table.add_column("uptime", justify="right")
    table.add_column("↺", justify="right")
    table.add_column("status")
    table.add_column("cpu", justify="right")
    table.add_column("mem", justify="right")
    for info in sorted(infos, key=lambda i: i.pm_id):
        table.add_row(
            str(info.pm_id),
            Text(printable(info.name)),  # Text: a name is no rich markup ("[/]" raised)
            Text(printable(info.namespace)),
            mode_word(info.exec_mode),
            str(info.pid or 0),
            uptime_of(info, now),
            str(info.restart_time),
            status_text(info.status),
            human_cpu(info.cpu),
            human_bytes(info.memory),
        )
    return table


EMPTY_HINT = "No process is managed yet. Start one with: corral start app.py --name web"


def _env(info: Any) -> dict:
    return info.to_dict().get("pm2_env", {})


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def _words(value: Any) -> str:
    if value is None or value == []:
        return "-"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def describe_rows(
    info: Any, now: int, *, show_secrets: bool = False
) -> list[tuple[str, str | Text]]:
    """The fields ``corral describe`` shows, in order, as (label, value); secrets in
    the script's and interpreter's arguments masked unless ``show_secrets``."""
    env = _env(info)
    opts = info.options or {}

    def shown(value: Any) -> str:
        if show_secrets:
            return _words(value)
        if isinstance(value, (list, tuple)):
            return _words(mask_args(value))
        return " ".join(mask_args(_words(value).split(" ")))  # a command line, as typed

    return [
        ("status", status_text(info.status)),
        ("ready", ready_text(info)),
        ("name", info.name),
        ("namespace", info.namespace),
        ("id", str(info.pm_id)),
        ("pid", str(info.pid or "-")),
        ("exec mode", mode_word(info.exec_mode)),
        ("restarts", str(info.restart_time)),
        ("unstable restarts", str(info.unstable_restarts)),
        ("uptime", uptime_of(info, now)),
        ("created at", _when(info.created_at)),
        ("cpu", human_cpu(info.cpu)),
        ("memory", human_bytes(info.memory)),
        ("script path", shown(env.get("pm_exec_path", opts.get("script")))),
        ("script args", shown(opts.get("args"))),
        ("interpreter", _words(env.get("exec_interpreter", opts.get("exec_interpreter")))),
        ("interpreter args", shown(opts.get("node_args"))),
        ("exec cwd", _words(env.get("pm_cwd", opts.get("cwd")))),
        ("autorestart", _words(opts.get("autorestart", True))),
        ("out log path", info.out_log or "-"),
        ("error log path", info.err_log or "-"),
        ("pid path", _words(env.get("pm_pid_path"))),
        *(("log drops", _log_drop(drop)) for drop in env.get("log_drops") or []),
    ]


def ready_text(info: Any) -> str:
    """The instance's readiness, beside its status: ``yes (ready message, 1.2 s after
    spawn)``, ``no: listen_timeout (3 s) passed without a signal``, ``waiting (up to
    3 s)``, or ``-`` when no instance runs."""
    env = _env(info)
    by, at = env.get("ready_by"), env.get("ready_at")
    timeout = _ms(int((info.options or {}).get("listen_timeout") or 3000))
    if by is None:
        return f"waiting (up to {timeout})" if info.pid else "-"
    if by == "spawned":
        return "yes (at spawn: no signal awaited)"
    if by == "listen_timeout":
        return f"no: listen_timeout ({timeout}) passed without a signal"
    spawned = info.pm_uptime
    after = f", {_ms(at - spawned)} after spawn" if at and spawned else ""
    return f"yes ({by}{after})"


def _ms(ms: int) -> str:
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:g} s"


def _log_drop(drop: dict[str, Any]) -> str:
    """``/logs/web-out.log: 120 lines (12.0 KB) dropped; No space left on device``."""
    lost = f"{drop.get('lines', 0)} lines ({human_bytes(drop.get('bytes', 0))}) dropped"
    now = f"; {drop['error']}" if drop.get("error") else "; writing again"
    return f"{drop.get('path')}: {lost}{now}"


def divergent_env(
    info: Any, local: Mapping[str, str], *, show_secrets: bool = False
) -> list[tuple[str, str]]:
    """The app's variables whose value differs from ``local`` (PM2's "divergent env
    variables from local env"), sorted, secret values masked unless ``show_secrets``."""
    env = _env(info).get("env") or {}
    rows = [(k, v) for k, v in sorted(env.items()) if local.get(k) != v]
    if show_secrets:
        return [(k, str(v)) for k, v in rows]
    return [(k, str(mask(k, v))) for k, v in rows]


def describe_panel(
    info: Any,
    now: int | None = None,
    *,
    local_env: Mapping[str, str] | None = None,
    show_secrets: bool = False,
) -> Panel:
    """The ``corral describe`` panel; with ``local_env``, the app's variables that
    differ from it too (secret values masked unless ``show_secrets``)."""
    now = now_ms() if now is None else now
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for label, value in describe_rows(info, now, show_secrets=show_secrets):
        grid.add_row(label, Text(printable(value)) if isinstance(value, str) else value)
    if local_env is not None:
        rows = divergent_env(info, local_env, show_secrets=show_secrets)
        if rows:
            grid.add_row(Text("env (differs from here)", style="dim"), "")
        for name, value in rows:
            grid.add_row(Text(f"  {printable(name)}", style=""), Text(printable(value)))
    title = Text(f"{printable(info.name)} (id {info.pm_id})")
    return Panel(grid, title=title, title_align="left", expand=False)


def plugins_table(plugins: Iterable[dict]) -> Table:
    table = Table(box=box.ROUNDED, header_style="bold")
    for column in ("name", "dist", "version", "errors"):
        table.add_column(column, no_wrap=True)
    for plugin in plugins:
        errors = len(plugin.get("errors") or [])
        table.add_row(
            plugin.get("name", ""),
            plugin.get("dist") or "-",
            plugin.get("version") or "-",
            Text(str(errors), style="red" if errors else ""),
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


# -- monit -------------------------------------------------------------------

MONIT_LOG_LINES = 15


def monit_table(
    infos: Sequence[Any], selected: int | None, now: int, *, expand: bool = True
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", expand=expand, title="corral monit")
    for column, justify in (
        ("id", "right"),
        ("name", "left"),
        ("status", "left"),
        ("cpu", "right"),
        ("mem", "right"),
        ("↺", "right"),
        ("uptime", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)
    for info in infos:
        table.add_row(
            str(info.pm_id),
            Text(printable(info.name)),
            status_text(info.status),
            human_cpu(info.cpu),
            human_bytes(info.memory),
            str(info.restart_time),
            uptime_of(info, now),
            style="reverse" if info.pm_id == selected else None,
        )
    return table


def monit_logs(info: Any, count: int = MONIT_LOG_LINES) -> list[Text]:
    """The selected app's last lines: its out log, then its err log, ``count`` in all."""
    out = tail_lines(info.out_log, count) if info.out_log else []
    err = []
    if info.err_log and info.err_log != info.out_log:
        err = tail_lines(info.err_log, count)
    keep_err = min(len(err), max(count - len(out), count // 3))
    keep_out = min(len(out), count - keep_err)
    lines = [log_line("out", "out", printable(line)) for line in out[len(out) - keep_out :]]
    lines += [log_line("err", "err", printable(line)) for line in err[len(err) - keep_err :]]
    return lines


def monit_view(
    infos: Sequence[Any], selected: int | None, now: int | None = None, *, expand: bool = True
) -> Group:
    """The whole monit screen: the process list, then the selected app's logs."""
    now = now_ms() if now is None else now
    infos = sorted(infos, key=lambda i: i.pm_id)
    chosen = next((i for i in infos if i.pm_id == selected), None)
    if chosen is None:
        logs: Any = Text(EMPTY_HINT if not infos else "no process selected", style="dim")
        title: str | Text = "logs"
    else:
        lines = monit_logs(chosen)
        logs = Text("\n").join(lines) if lines else Text("(no output yet)", style="dim")
        title = Text(f"{printable(chosen.name)} (id {chosen.pm_id}) logs")
    help_line = Text("↑/↓ or k/j select · q quit", style="dim")
    table = monit_table(infos, selected, now, expand=expand)
    return Group(table, Panel(logs, title=title, expand=expand), help_line)


# -- showing logs and monit --------------------------------------------------------------------


# -- running monit -------------------------------------------------------------------

UP_KEYS = ("\x1b[A", "\x1bOA", "k")
DOWN_KEYS = ("\x1b[B", "\x1bOB", "j")


def run_monit(client: Any) -> None:
    """Render once when stdin is not a terminal; otherwise a live view until `q`."""
    console = make_console()
    infos = client.list()
    ids = sorted(info.pm_id for info in infos)
    selected = ids[0] if ids else None
    if not sys.stdin.isatty():
        console.print(monit_view(infos, selected, expand=False))
        return

    import select
    import termios
    import tty

    from rich.live import Live

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)  # keys one by one, output processing (newlines) intact
    try:
        with Live(console=console, screen=True, auto_refresh=False) as live:
            next_tick = 0.0
            while True:
                if time.monotonic() >= next_tick:
                    infos = client.list()
                    ids = sorted(info.pm_id for info in infos)
                    next_tick = time.monotonic() + 1.0
                if selected not in ids:
                    selected = ids[0] if ids else None
                live.update(monit_view(infos, selected), refresh=True)
                ready, _, _ = select.select([fd], [], [], max(0.0, next_tick - time.monotonic()))
                if not ready:
                    continue
                key = os.read(fd, 32).decode("utf-8", "ignore")
                if key.startswith("q"):
                    return
                if ids and selected is not None:
                    step = -1 if key in UP_KEYS else 1 if key in DOWN_KEYS else 0
                    position = min(max(ids.index(selected) + step, 0), len(ids) - 1)
                    selected = ids[position]
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
