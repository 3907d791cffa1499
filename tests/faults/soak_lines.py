"""The soak test's log-flood app and its line accounting.

A flood app writes numbered lines ``<app>:<pid>:<stream>:<seq>:xxx...`` of
``LINE`` bytes to stdout and stderr, ``BATCH`` lines per ``write`` (one atomic
pipe write, under ``PIPE_BUF``), at a fixed rate. Each run (pid) of the app is
its own sequence from 1. When it stops (SIGINT/SIGTERM) or its pipe breaks (the
daemon died) it writes a report: the last sequence number whose ``write``
returned, per stream, and why it ended. Signals are blocked around each write
and its count, so a report never misses a written batch.

:func:`account` then reads the log files and checks, for each run and stream:
no torn or foreign line, no duplicate, no hole in the middle, and a tail lost
only by a run a daemon kill caught (at most what the pipe held).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

LINE = 100  # bytes per line, newline included
BATCH = 10  # lines per write: 1000 bytes, under PIPE_BUF, so a write is whole or nothing

FLOOD = f"""\
import json, os, signal, sys, time

NAME, RATE, REPORTS = sys.argv[1], float(sys.argv[2]), sys.argv[3]
LINE, BATCH = {LINE}, {BATCH}
PID = os.getpid()
STARTED = time.time()
last = {{"out": 0, "err": 0}}
ended = []


def report(why):
    if ended:
        return
    ended.append(why)
    body = dict(last, why=why, started=STARTED, ended=time.time())
    tmp = os.path.join(REPORTS, f"{{NAME}}-{{PID}}.tmp")
    with open(tmp, "w") as f:
        json.dump(body, f)
    os.replace(tmp, os.path.join(REPORTS, f"{{NAME}}-{{PID}}.json"))


def on_signal(signum, frame):
    report(signal.Signals(signum).name)
    os._exit(0)


signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)
STOPS = {{signal.SIGINT, signal.SIGTERM}}


def batch(stream, first):
    lines = []
    for seq in range(first, first + BATCH):
        head = f"{{NAME}}:{{PID}}:{{stream}}:{{seq}}:"
        lines.append(head + "x" * (LINE - 1 - len(head)) + "\\n")
    return "".join(lines).encode()


interval = BATCH / RATE
due = time.monotonic()
while not ended:
    for stream, fd in (("out", 1), ("err", 2)):
        data = batch(stream, last[stream] + 1)
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)
        try:
            os.write(fd, data)
            last[stream] += BATCH
        except BrokenPipeError:
            report("epipe")  # the daemon died: nobody reads this pipe any more
            break
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
    due += interval
    time.sleep(max(0.0, due - time.monotonic()))
while True:  # an app that lost its output keeps running until it is stopped
    time.sleep(3600)
"""

_LINE_RE = re.compile(rb"^([\w.-]+):(\d+):(out|err):(\d+):(x*)$")
_HEAD_RE = re.compile(rb"[\w.-]+:\d+:(out|err):\d+:")


@dataclass
class Kill:
    """One SIGKILL of the daemon, as the test did it."""

    at: float  # time.time() just before the signal
    daemon: int
    flood_pids: set[int]  # flood runs alive at that moment
    held: bool = (
        False  # a pipe holder (corral.supervisor.fdholder) ran: the next daemon drains the pipes
    )


@dataclass
class Run:
    """One run (pid) of a flood app on one stream: what it wrote and what the log has."""

    app: str
    pid: int
    stream: str
    seqs: list[int] = field(default_factory=list)
    written: int | None = None  # from the run's report; None: killed before it could tell
    why: str | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def in_log(self) -> int:
        return len(set(self.seqs))

    def duplicates(self) -> int:
        return len(self.seqs) - len(set(self.seqs))

    def holes(self) -> int:
        """Sequence numbers missing below the highest one logged (never a lost tail)."""
        return (max(self.seqs) - len(set(self.seqs))) if self.seqs else 0

    def out_of_order(self) -> int:
        return sum(1 for a, b in pairwise(self.seqs) if b < a)

    def lost_tail(self) -> int | None:
        if self.written is None:
            return None
        return self.written - (max(self.seqs) if self.seqs else 0)

    def caught_by(self, kills: Iterable[Kill], grace: float) -> Kill | None:
        """The daemon kill this run's pipe may have lost lines to, if any.

        A run alive at a kill, or one that ended (its last lines maybe still in the
        pipe) less than ``grace`` seconds before it."""
        for kill in kills:
            if self.pid in kill.flood_pids:
                return kill
            if self.ended is not None and self.started is not None:
                if self.started <= kill.at and self.ended >= kill.at - grace:
                    return kill
        return None


def read_reports(folder: Path) -> dict[tuple[str, int], dict]:
    found = {}
    for path in folder.glob("*.json"):
        body = json.loads(path.read_text())
        app, pid = path.stem.rsplit("-", 1)
        found[(app, int(pid))] = body
    return found


def parse_log(
    path: Path, app: str, stream: str, runs: dict, torn: list[str], other: list[str]
) -> None:
    """Add the lines of one log file to ``runs``; a line that is a flood line cut or glued to
    another goes to ``torn``, any other line (Python's own, of a run stopped while it
    started) to ``other``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    for raw in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        match = _LINE_RE.match(raw)
        if (
            not match
            or len(raw) + 1 != LINE
            or match[1].decode() != app
            or match[3].decode() != stream
        ):
            suspect = _HEAD_RE.search(raw) or b"xxxxx" in raw
            (torn if suspect else other).append(f"{path.name}: {raw[:120]!r}")
            continue
        key = (app, int(match[2]), stream)
        run = runs.setdefault(key, Run(app, int(match[2]), stream))
        run.seqs.append(int(match[4]))
    if data and not data.endswith(b"\n"):
        torn.append(f"{path.name}: no newline at the end")


def account(
    logs: dict[str, tuple[str, str]], reports: Path
) -> tuple[dict[tuple[str, int, str], Run], list[str], list[str]]:
    """Every run of every flood app (``{app: (out_log, err_log)}``), the torn lines and
    the other lines."""
    runs: dict[tuple[str, int, str], Run] = {}
    torn: list[str] = []
    other: list[str] = []
    for app, (out_log, err_log) in logs.items():
        parse_log(Path(out_log), app, "out", runs, torn, other)
        parse_log(Path(err_log), app, "err", runs, torn, other)
    for (app, pid), body in read_reports(reports).items():
        for stream in ("out", "err"):
            run = runs.setdefault((app, pid, stream), Run(app, pid, stream))
            run.written = body[stream]
            run.why, run.started, run.ended = body["why"], body["started"], body["ended"]
    return runs, torn, other
