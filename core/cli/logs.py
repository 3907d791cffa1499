"""``corral logs``: the last lines of the apps' logs in time order, then a stream of
new lines until Ctrl-C, as ``pm2 logs`` prints them.

Time order: lines are merged by the time written in them (the ``<date>: `` prefix
of ``log_date_format`` or ``time``, the ``timestamp`` of ``log_type: json``
records and of corral.log records). A line without a time takes the time of the
line before it in the same file, or, for the lines before the first timed one,
the file's modification time; so files without any time come whole, oldest
modified first (as PM2 prints them), and each file keeps its own order. While
following, the lines found in one poll (every 0.1 s) are ordered the same way,
an untimed line taking the time it was read.

Following reads the files, not the bus: it survives rotation by rename (the
logrotate plugin, ``mv`` + ``reload-logs``), ``flush`` (read again from 0), app
restarts (same files), and new instances (the process list is read every
second; a file that appeared since ``logs`` started is read from its start, one
that existed from where it was then). A flush loses what it truncated: lines
written in the last poll interval before it and not yet read.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from corral.cli.base import parse_target
from corral.cli.logfiles import (
    DAEMON,
    Entry,
    Source,
    backlog,
    select_sources,
    snapshot_dirs,
    start_new,
)
from corral.cli.logtail import iso_time
from corral.datefmt import date_formatter
from corral.errors import CorralError
from corral.rpc.wire import pid_alive

DEFAULT_LINES = 15
DEFAULT_TIMESTAMP = "YYYY-MM-DD-HH:mm:ss"  # PM2's --timestamp default
FORMAT_TIMESTAMP = "YYYY-MM-DD-HH:mm:ssZZ"  # PM2's --format timestamps
POLL = 0.1  # seconds a change is given to settle before the files are read
IDLE_READ = 1.0  # seconds between reads of the files when nothing woke the follower
LIST_EVERY = 1.0  # seconds between reads of the process list (new instances)


# -- rendering -----------------------------------------------------------------


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if text and " " not in text and '"' not in text else json.dumps(text)


def daemon_line(line: str) -> str:
    """A corral.log record as one readable line: ``12:00:01 info spawned app=web pid=123``."""
    try:
        record = json.loads(line)
    except ValueError:
        return line
    if not isinstance(record, dict):
        return line
    record = dict(record)
    when = iso_time(record.pop("timestamp", None))
    words = [datetime.fromtimestamp(when).strftime("%H:%M:%S")] if when is not None else []
    words.append(str(record.pop("level", "info")))
    words.append(str(record.pop("event", "")))
    words += [f"{key}={_value(value)}" for key, value in record.items()]
    return " ".join(word for word in words if word)


class Printer:
    """Writes entries in one of the output modes (prefixed, raw, json, format)."""

    def __init__(self, *, mode: str, timestamp: str | None) -> None:
        from corral.cli.render import (
            make_console,  # deferred: rich (~25 ms) loads only when lines print
        )

        self.mode = mode
        self.console = make_console()
        self.console.on_broken_pipe = _quiet_pipe  # type: ignore[method-assign]
        self.stamp = date_formatter(timestamp) if timestamp else None
        self.width = 0

    def widen(self, sources: list[Source]) -> None:
        self.width = max([self.width, *(len(s.prefix) for s in sources)])

    def emit(self, entry: Entry, when: float | None) -> None:
        from rich.text import Text  # deferred: rich (~25 ms) loads only when lines print

        from corral.cli.render import STREAM_STYLES, printable  # deferred: rich (~25 ms), as above

        source = entry.source
        if self.mode == "json":
            stamp = datetime.fromtimestamp(when).astimezone().isoformat() if when else None
            record = {
                "app": source.app,
                "pm_id": source.pm_id,
                "stream": source.stream,
                "time": stamp,
                "line": entry.line,
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        elif self.mode == "raw":
            sys.stdout.write(entry.line + "\n")  # as the app wrote it, escape sequences and all
        elif self.mode == "format":
            words = [f"timestamp={date_formatter(FORMAT_TIMESTAMP)(when or time.time())}"]
            if source.pm_id is None:
                words.append(f"app={DAEMON}")
            else:
                words += [f"app={source.app}", f"id={source.pm_id}"]
                words.append("type=out" if source.stream == "out" else "type=error")
            line = daemon_line(entry.line) if source.pm_id is None else entry.line
            sys.stdout.write(" ".join(words) + f" message={printable(line)}\n")
        else:
            line = daemon_line(entry.line) if source.pm_id is None else entry.line
            text = Text()
            if self.stamp is not None:
                shown = self.stamp(when) if when is not None else ""
                text.append(shown.ljust(len(self.stamp(0))) + " ", style="dim")
            style = STREAM_STYLES.get(source.stream, "")
            text.append(f"{source.prefix.ljust(self.width)} | ", style=style)
            text.append(printable(line))
            self.console.print(text, soft_wrap=True)


# -- following ---------------------------------------------------------------------


def follow_sources(
    sources: list[Source],
    printer: Printer,
    refresh: Callable[[], list[Source]] | None,
    snapshot: dict[str, tuple[int, int]],
) -> None:
    """Print new lines of every source until interrupted: read when a watched file
    changed (:class:`~corral.cli.logwake.Waker`), and once a second in any case."""
    from corral.cli.logwake import (
        Waker,  # deferred: watchdog's observer thread, only to follow the files
    )

    waker = Waker()
    waker.watch(s.path for s in sources)
    try:
        _follow(sources, printer, refresh, snapshot, waker)
    finally:
        waker.close()


def _follow(
    sources: list[Source],
    printer: Printer,
    refresh: Callable[[], list[Source]] | None,
    snapshot: dict[str, tuple[int, int]],
    waker: Any,
) -> None:
    next_list = time.monotonic() + LIST_EVERY
    while True:
        batch: list[Entry] = []
        now = time.time()
        for source in sources:
            for line in source.follower.read_lines():
                written = source.read_time(line)
                batch.append(Entry(source, line, written, written if written else now))
        batch.sort(key=lambda e: e.key)
        for entry in batch:
            printer.emit(entry, entry.time or now)
        sys.stdout.flush()
        if refresh is not None and time.monotonic() >= next_list:
            next_list = time.monotonic() + LIST_EVERY
            known = {s.path for s in sources}
            fresh = [s for s in refresh() if s.path not in known]
            for source in fresh:
                start_new(source, snapshot)
            if fresh:
                sources.extend(fresh)
                printer.widen(fresh)
                waker.watch(s.path for s in fresh)
        idle = IDLE_READ
        if refresh is not None:  # wake in time for the next read of the process list
            idle = min(idle, max(0.01, next_list - time.monotonic()))
        if waker.wait(idle):
            time.sleep(POLL)  # let a burst of writes settle: one read for all of it


# -- the command ---------------------------------------------------------------------


def _quiet_pipe() -> None:
    """stdout was closed by the reader (``| head``): stop quietly, exit 0."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(0)


def add_commands(cli: click.Group, client_factory: Callable[[], Any]) -> None:
    @cli.command()
    @click.argument("target", required=False)
    @click.option(
        "--lines",
        default=DEFAULT_LINES,
        show_default=True,
        type=click.IntRange(min=0),
        help="How many past lines to print per file.",
    )
    @click.option("--nostream", is_flag=True, help="Print the past lines and exit.")
    @click.option(
        "-f",
        "--follow",
        is_flag=True,
        hidden=True,
        help="Follow (the default; kept for old scripts).",
    )
    @click.option("--out", "only", flag_value="out", help="Only the standard output logs.")
    @click.option("--err", "only", flag_value="err", help="Only the standard error logs.")
    @click.option(
        "--raw",
        is_flag=True,
        help="Print the lines as written: no prefix, no colour, escape sequences kept.",
    )
    @click.option(
        "--timestamp",
        is_flag=False,
        flag_value=DEFAULT_TIMESTAMP,
        default=None,
        metavar="[FORMAT]",
        help=f"Prefix each line with its time (default format {DEFAULT_TIMESTAMP}).",
    )
    @click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON lines: one object per log line with app, pm_id, stream, time, "
        "line (see README, JSON output).",
    )
    @click.option(
        "--format",
        "as_format",
        is_flag=True,
        help="Print key=value lines: timestamp=... app=... id=... type=out message=...",
    )
    def logs(
        target: str | None,
        lines: int,
        nostream: bool,
        follow: bool,  # accepted: following is the default
        only: str | None,
        raw: bool,
        timestamp: str | None,
        as_json: bool,
        as_format: bool,
    ) -> None:
        """Print the last lines of the apps' logs in time order, then follow them until
        Ctrl-C (all apps and corral.log by default; TARGET `corral`: the daemon's log).

        Escape sequences in the apps' output are removed and other control
        characters shown as \\xNN, unless --raw."""
        if timestamp:
            try:
                date_formatter(timestamp)  # a bad format: one clear line, before anything
            except CorralError as exc:
                raise CorralError(
                    f"--timestamp: {exc} (write TARGET before --timestamp, or --timestamp=FORMAT)"
                ) from None
        mode = "json" if as_json else "raw" if raw else "format" if as_format else "text"
        client = client_factory()

        def current() -> list[Source]:
            if target == DAEMON:
                try:
                    infos = client.describe(DAEMON)
                except CorralError:
                    infos = []
            elif target and target != "all":
                infos = client.describe(parse_target(target))
            else:
                infos = client.list()
            with_daemon = (not target or target in ("all", DAEMON)) and not only
            if raw and target != DAEMON:
                with_daemon = False  # as PM2: --raw shows the apps' lines only
            return select_sources(infos, only=only, home=client.home if with_daemon else None)

        def refresh() -> list[Source]:
            pid = getattr(client, "daemon_pid", None)
            if pid and not pid_alive(pid):
                return []  # the daemon is gone: keep following the files, no RPC to wait on
            try:
                return current()
            except (CorralError, OSError):
                return []  # the daemon is gone or the app deleted: keep following the files

        sources = current()
        snapshot = snapshot_dirs(sources)
        printer = Printer(mode=mode, timestamp=timestamp)
        printer.widen(sources)
        try:
            if mode == "text" and sys.stdout.isatty():
                from rich.text import Text  # deferred: rich (~25 ms), only on a terminal

                printer.console.print(
                    Text(f"[TAILING] last {lines} lines of {len(sources)} files", style="dim")
                )
            for entry in backlog(sources, lines):
                printer.emit(entry, entry.time)
            sys.stdout.flush()
            if nostream:
                for source in sources:
                    source.follower.close()
                return
            follow_sources(sources, printer, refresh, snapshot)
        except BrokenPipeError:
            _quiet_pipe()
