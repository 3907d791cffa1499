"""``corral monit``: a live list of the processes and the selected one's logs.

The screen is, top to bottom: a status line, the process list, the log pane of
the selected app (:mod:`corral.cli.monit_log`: out and err merged in time order, err
lines red and marked ``err |``) and the key help. The pane and the help always
keep their rows; the list gets what is left and scrolls so that the selected
row (reversed, marked ``>``) is always on screen.

Keys: ↑/↓ or k/j move one row per press (every key waiting is read before the
next frame, so key repeat never drops presses), PgUp/PgDn a page, Home/End or
g/G the first/last row, ``/`` types a filter (a substring of the name; Enter
keeps it, Esc clears it), q quits.

Cost: one ``list`` call a second, the selected app's two files read only for
what they gained, every :data:`~corral.cli.monit_log.POLL` seconds, and a frame
drawn only when something changed (bench/monit_cpu.py measures it).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from corral.cli.monit_log import POLL, MergedLog
from corral.cli.render import (
    EMPTY_HINT,
    STATUS_STYLES,
    human_bytes,
    human_cpu,
    log_line,
    make_console,
    now_ms,
    printable,
    status_text,
    uptime_of,
)

MONIT_LOG_LINES = 15  # the pane of the one-shot view (no terminal)
MIN_LOG_ROWS = 5  # the pane never gets fewer lines than this
LIST_EVERY = 1.0  # seconds between two list calls
HELP = "↑↓/jk move · PgUp/PgDn page · g/G first/last · / filter · Esc clear · q quit"
FILTER_HELP = "type a name · Enter keep · Esc clear · ↑↓ move"

UP, DOWN, PAGE_UP, PAGE_DOWN, HOME, END, ESC, ENTER, BACKSPACE = (
    "up down pgup pgdn home end esc enter backspace".split()
)
_SEQUENCES = {
    "\x1b[A": UP, "\x1bOA": UP, "\x1b[B": DOWN, "\x1bOB": DOWN,
    "\x1b[5~": PAGE_UP, "\x1b[6~": PAGE_DOWN,
    "\x1b[H": HOME, "\x1bOH": HOME, "\x1b[1~": HOME, "\x1b[7~": HOME,
    "\x1b[F": END, "\x1bOF": END, "\x1b[4~": END, "\x1b[8~": END,
}  # fmt: skip
_PLAIN = {"\r": ENTER, "\n": ENTER, "\x7f": BACKSPACE, "\x08": BACKSPACE}


def split_keys(data: str) -> list[str]:
    """The keys in what the terminal sent: characters, and names for the escape
    sequences of arrows and paging keys (an unknown sequence is dropped; a lone
    ESC is the Esc key)."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        char = data[i]
        if char == "\x1b" and i + 1 < len(data) and data[i + 1] in "[O":
            j = i + 2
            while j < len(data) and not ("@" <= data[j] <= "~"):
                j += 1
            sequence = data[i : j + 1]
            if sequence in _SEQUENCES:
                keys.append(_SEQUENCES[sequence])
            i = j + 1
            continue
        keys.append(ESC if char == "\x1b" else _PLAIN.get(char, char))
        i += 1
    return keys


class MonitScreen:
    """What monit shows and where the selection is; :meth:`press` takes keys,
    :meth:`view` draws one frame for a terminal of a given size."""

    def __init__(self) -> None:
        self.infos: list[Any] = []
        self.filter = ""
        self.typing = False
        self.selected: int | None = None  # a pm_id
        self.top = 0  # the index of the first row shown
        self.page = 10  # rows of the last frame drawn, for PgUp/PgDn
        self.log: MergedLog | None = None

    def set_infos(self, infos: Sequence[Any]) -> None:
        self.infos = sorted(infos, key=lambda i: i.pm_id)
        self._keep_selection()

    def shown(self) -> list[Any]:
        needle = self.filter.lower()
        return [i for i in self.infos if needle in str(i.name).lower()]

    def _keep_selection(self) -> None:
        ids = [i.pm_id for i in self.shown()]
        if self.selected not in ids:
            self.selected = ids[0] if ids else None

    def press(self, key: str) -> bool:
        """Act on one key; True when it asks to quit."""
        if self.typing:
            if key == ENTER:
                self.typing = False
            elif key == ESC:
                self.typing, self.filter = False, ""
            elif key == BACKSPACE:
                self.filter = self.filter[:-1]
            elif len(key) == 1 and key.isprintable():
                self.filter += key
            else:
                self._move(key)
            self._keep_selection()
            return False
        if key == "q":
            return True
        if key == "/":
            self.typing = True
        elif key == ESC:
            self.filter = ""
            self._keep_selection()
        else:
            self._move(key)
        return False

    def _move(self, key: str) -> None:
        ids = [i.pm_id for i in self.shown()]
        if not ids:
            return
        at = ids.index(self.selected) if self.selected in ids else 0
        step = {UP: -1, "k": -1, DOWN: 1, "j": 1, PAGE_UP: -self.page, PAGE_DOWN: self.page}
        if key in (HOME, "g"):
            at = 0
        elif key in (END, "G"):
            at = len(ids) - 1
        elif key in step:
            at = min(max(at + step[key], 0), len(ids) - 1)
        self.selected = ids[at]

    def poll_log(self) -> bool:
        """Read the selected app's new lines; True if the pane changed."""
        chosen = self._chosen()
        if chosen is None:
            changed = self.log is not None
            self._close_log()
            return changed
        if self.log is None or not self.log.matches(chosen):
            self._close_log()
            self.log = MergedLog(chosen)
            return True
        return self.log.poll()

    def _chosen(self) -> Any:
        return next((i for i in self.infos if i.pm_id == self.selected), None)

    def _close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    def view(self, width: int, height: int, now: int | None = None) -> Group:
        """One frame: every row fits ``height``; the pane and the help always show."""
        now = now_ms() if now is None else now
        self.poll_log()  # a new selection shows its lines in this very frame
        log_rows = max(MIN_LOG_ROWS, (height - 6) // 3)
        log_rows = min(log_rows, max(height - 7, 1))  # a tiny terminal: one list row at least
        rows = max(height - 6 - log_rows, 1)  # status, header, rule, 2 borders, help
        self.page = rows
        shown = self.shown()
        at = next((n for n, i in enumerate(shown) if i.pm_id == self.selected), 0)
        self.top = min(max(self.top, at - rows + 1, 0), at, max(len(shown) - rows, 0))
        window = shown[self.top : self.top + rows]
        status = Text("corral monit", style="bold")
        if shown:
            status.append(f"  {self.top + 1}-{self.top + len(window)} of {len(shown)}")
        if len(shown) != len(self.infos):
            status.append(f" (of {len(self.infos)})", style="dim")
        if self.filter or self.typing:
            status.append(f"  filter: {self.filter}", style="yellow")
            status.append("█" if self.typing else "")
        table = list_lines(window, self.selected, now, width)
        filler = [Text("")] * (rows - len(window))
        help_text = Text(FILTER_HELP if self.typing else HELP, style="dim")
        help_text.no_wrap, help_text.overflow = True, "ellipsis"
        return Group(_one_line(status), *table, *filler, self._pane(log_rows), _one_line(help_text))

    def _pane(self, rows: int) -> Panel:
        chosen = self._chosen()
        if chosen is None:
            hint = EMPTY_HINT if not self.infos else "no process matches the filter"
            return Panel(Text(hint, style="dim"), title="logs", height=rows + 2)
        lines = list(self.log.lines)[-rows:] if self.log is not None else []
        body = Text("\n").join(_one_line(_shown(line)) for line in lines)
        if not lines:
            body = Text("(no output yet)", style="dim")
        title = Text(f"{printable(chosen.name)} (id {chosen.pm_id}) logs")
        return Panel(body, title=title, title_align="left", height=rows + 2)

    def close(self) -> None:
        self._close_log()


def _one_line(text: Text) -> Text:
    text.no_wrap, text.overflow = True, "ellipsis"
    return text


def _shown(line: tuple[str, str, str]) -> Text:
    stream, text, _ = line
    return log_line(stream, stream, printable(text))


def monit_table(
    infos: Sequence[Any], selected: int | None, now: int, *, expand: bool = True
) -> Table:
    """The process list; the selected row reversed and marked ``>``."""
    table = Table(
        box=box.SIMPLE_HEAD, header_style="bold", expand=expand, show_edge=False, pad_edge=False
    )
    table.add_column("", no_wrap=True, width=1)
    for column, justify in (("id", "right"), ("name", "left"), ("status", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    for column in ("cpu", "mem", "↺", "uptime"):
        table.add_column(column, justify="right", no_wrap=True)
    table.columns[2].ratio, table.columns[2].overflow = 1, "ellipsis"
    for info in infos:
        chosen = info.pm_id == selected
        table.add_row(
            ">" if chosen else " ",
            str(info.pm_id),
            Text(printable(info.name)),
            status_text(info.status),
            human_cpu(info.cpu),
            human_bytes(info.memory),
            str(info.restart_time),
            uptime_of(info, now),
            style="reverse" if chosen else None,
        )
    return table


def list_lines(infos: Sequence[Any], selected: int | None, now: int, width: int) -> list[Text]:
    """The process list as lines of ``width``: a header, a rule, a row per process,
    the selected one reversed and marked ``>``. Plain columns, not a rich Table: a
    frame a second of a table costs monit several % of a core (bench/monit_cpu.py)."""
    cells = [
        (
            str(i.pm_id),
            printable(i.name),
            i.status,
            human_cpu(i.cpu),
            human_bytes(i.memory),
            str(i.restart_time),
            uptime_of(i, now),
        )
        for i in infos
    ]
    heads = ("id", "name", "status", "cpu", "mem", "↺", "uptime")
    sizes = [max([len(h), *(len(row[n]) for row in cells)]) for n, h in enumerate(heads)]
    sizes[1] = max(width - 2 - sum(sizes) + sizes[1] - 2 * (len(heads) - 1), 4)

    def line(mark: str, row: Sequence[str], style: str = "") -> Text:
        text = Text(f"{mark} ", style=style)
        for n, cell in enumerate(row):
            if n == 1 and len(cell) > sizes[1]:
                cell = cell[: sizes[1] - 1] + "…"
            shown = cell.ljust(sizes[n]) if n in (1, 2) else cell.rjust(sizes[n])
            colour = STATUS_STYLES.get(cell, "") if n == 2 and not style else ""
            text.append(shown + ("  " if n < len(row) - 1 else ""), style=colour)
        return _one_line(text)

    lines = [line(" ", heads, "bold"), Text("─" * width, style="dim")]
    for info, row in zip(infos, cells, strict=True):
        chosen = info.pm_id == selected
        lines.append(line(">" if chosen else " ", row, "reverse" if chosen else ""))
    return lines


def monit_logs(info: Any, count: int = MONIT_LOG_LINES) -> list[Text]:
    """The app's last ``count`` lines, out and err merged (see :mod:`corral.cli.monit_log`)."""
    log = MergedLog(info, keep=count)
    try:
        return [_shown(line) for line in log.lines]
    finally:
        log.close()


def monit_view(
    infos: Sequence[Any], selected: int | None, now: int | None = None, *, expand: bool = True
) -> Group:
    """Every process, then the selected app's logs: what monit prints without a terminal."""
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
    table = monit_table(infos, selected, now, expand=expand)
    return Group(table, Panel(logs, title=title, expand=expand), Text(HELP, style="dim"))


def run_monit(client: Any) -> None:
    """Render once when stdin is not a terminal; otherwise a live view until `q`."""
    console = make_console()
    infos = client.list()
    if not sys.stdin.isatty():
        first = min((i.pm_id for i in infos), default=None)
        console.print(monit_view(infos, first, expand=False))
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)  # keys one by one, output processing (newlines) intact
    screen = MonitScreen()
    screen.set_infos(infos)
    try:
        _live(client, console, screen, fd)
    finally:
        screen.close()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _terminal_size(console: Console) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        size = os.terminal_size((0, 0))
    if not size.columns or not size.lines:  # a terminal that never said its size (a bare pty)
        return console.size.width, console.size.height
    return size.columns, size.lines


def _live(client: Any, console: Console, screen: MonitScreen, fd: int) -> None:
    import select

    with Live(console=console, screen=True, auto_refresh=False) as live:
        next_list = time.monotonic() + LIST_EVERY
        next_poll = time.monotonic() + POLL
        drawn_size = None
        dirty = True
        while True:
            now = time.monotonic()
            if now >= next_list:
                screen.set_infos(client.list())
                next_list, dirty = now + LIST_EVERY, True
            if now >= next_poll:
                dirty = screen.poll_log() or dirty
                next_poll = now + POLL
            size = _terminal_size(console)
            if dirty or size != drawn_size:
                console.size = size  # the terminal's own size, not a stale $LINES/$COLUMNS
                live.update(screen.view(*size), refresh=True)
                drawn_size, dirty = size, False
            wait = max(0.0, min(next_list, next_poll) - time.monotonic())
            if not select.select([fd], [], [], wait)[0]:
                continue
            data = b""
            while select.select([fd], [], [], 0)[0]:  # every key waiting, then one frame
                chunk = os.read(fd, 4096)
                if not chunk:
                    return
                data += chunk
            for key in split_keys(data.decode("utf-8", "ignore")):
                if screen.press(key):
                    return
            dirty = True
