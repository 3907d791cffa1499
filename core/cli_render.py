"""What the ``corral`` CLI shows: the process table, describe panels, the log
files it tails and follows, and the monit view.

Everything here takes plain values (``ProcessInfo`` or anything with the same
attributes, a clock in epoch ms) and returns rich renderables or strings, so it
is tested without a daemon. Imported only by commands that print tables.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

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


def open_log(path: str | os.PathLike) -> BinaryIO | None:
    """``path`` opened for reading if it is a regular file, never through a symbolic
    link (None otherwise): the caller may be root, and an app's user can put a fifo
    (open would hang), a link to root's files, or to ``/dev/zero`` in place of its log."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return open(fd, "rb")


def tail_lines(path: str | os.PathLike, count: int) -> list[str]:
    """The last ``count`` lines of a file, read from its end (``[]`` if it is missing)."""
    if count <= 0:
        return []
    handle = open_log(path)
    if handle is None:
        return []
    with handle:
        position = handle.seek(0, os.SEEK_END)
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(65536, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8", "replace").rstrip("\r") for line in lines[-count:]]


@dataclass
class FollowedFile:
    """One log file being followed, reopened when it is rotated or truncated."""

    path: str
    prefix: str
    stream: str
    _handle: Any = field(default=None, repr=False)
    _inode: int | None = None
    _partial: bytes = b""

    def start_at_end(self) -> None:
        self._open(at_end=True)

    def _open(self, *, at_end: bool) -> None:
        handle = open_log(self.path)
        if handle is None:
            return
        self._close()
        self._handle = handle
        self._inode = os.fstat(handle.fileno()).st_ino
        if at_end:
            handle.seek(0, os.SEEK_END)

    def _close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def read_lines(self) -> list[str]:
        """The complete lines written since the last call."""
        data = b""
        try:
            stat = os.stat(self.path)
        except OSError:
            stat = None
        if self._handle is not None:
            if (
                stat is not None
                and stat.st_size < self._handle.tell()
                and stat.st_ino == self._inode
            ):
                self._handle.seek(0)  # truncated in place (flush, copytruncate)
            data = self._handle.read()
        if stat is not None and (self._handle is None or stat.st_ino != self._inode):
            self._open(at_end=False)  # created, or rotated by rename: read the new file whole
            if self._handle is not None:
                data += self._handle.read()
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace").rstrip("\r") for line in complete]

    def close(self) -> None:
        self._close()


# -- showing logs --------------------------------------------------------------------


def log_files(
    infos: Sequence[Any], *, only: str | None = None, home: str | os.PathLike | None = None
) -> list[tuple[str, str, str]]:
    """(path, prefix, stream) for every log file to show, each path once; with
    ``home``, the daemon's own ``corral.log`` first."""
    files: list[tuple[str, str, str]] = []
    if home is not None:
        files.append((os.path.join(home, "corral.log"), "corral", "corral"))
    seen = set()
    for info in sorted(infos, key=lambda i: i.pm_id):
        for stream, path in (("out", info.out_log), ("err", info.err_log)):
            if not path or path == os.devnull or path in seen or (only and only != stream):
                continue
            seen.add(path)
            files.append((path, f"{info.pm_id}|{info.name}", stream))
    return files


def show_logs(files: list[tuple[str, str, str]], *, lines: int, follow: bool, raw: bool) -> None:
    console = make_console()

    def emit(prefix: str, stream: str, text: str) -> None:
        if raw:
            sys.stdout.write(text + "\n")  # as the app wrote it, escape sequences and all
        else:
            console.print(log_line(prefix, stream, printable(text)), soft_wrap=True)

    for path, prefix, stream in files:
        if not raw and lines:
            console.print(Text(f"{path} last {lines} lines:", style="dim"), soft_wrap=True)
        for text in tail_lines(path, lines):
            emit(prefix, stream, text)
    sys.stdout.flush()
    if not follow:
        return
    followed = [FollowedFile(path, prefix, stream) for path, prefix, stream in files]
    for item in followed:
        item.start_at_end()
    while True:
        for item in followed:
            for text in item.read_lines():
                emit(item.prefix, item.stream, text)
        sys.stdout.flush()
        time.sleep(0.1)  # polling the files is the design here (no daemon streaming)
