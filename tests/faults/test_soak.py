"""Soak: a minute of mixed load, two SIGKILLs of the daemon, and every line accounted for.

For ``CORRAL_SOAK_SECONDS`` (default 60; ``.ci/run`` sets 20) at once:

- 50 client threads, each with its own ``corral.connect()``, list, describe and
  restart apps; a client whose daemon died connects again (the next
  ``connect()`` starts a daemon that recovers the apps);
- a crash-looping app (exits 1 after 0.3 s, restarted 0.5 s later);
- three log-flood apps (:mod:`tests.faults.soak_lines`), one of them restarted
  every second by the cron plugin;
- an app that grows until the memory plugin restarts it;
- two ``kill -9`` of the daemon at random times (``CORRAL_SOAK_SEED`` repeats a run).

Then: exactly the configured processes alive (found by the marker each app
carries in its environment), one daemon, and each flood app's lines accounted
for (see :func:`tests.faults.soak_lines.account`). Every problem is collected
and the figures printed before the test fails, so one run tells everything
(``pytest -s`` shows the figures of a run that passes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest

import corral
from corral.client.launcher import read_daemon_pid
from corral.errors import CorralError, DaemonError
from tests.conftest import kill_pids, wait_for
from tests.core.test_daemon import alive, daemons_of, reap
from tests.faults.soak_lines import FLOOD, LINE, Kill, account
from tests.faults.test_daemon_kill import marked_processes as marked_processes_of

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("CORRAL_SOAK_SECONDS", "60"))
SEED = int(os.environ.get("CORRAL_SOAK_SEED") or random.randrange(2**32))
CLIENTS = 50
RATE = 1000  # lines per second per stream of each flood app
MARK = "SOAK_MARK"
SLEEP = shutil.which("sleep") or "/bin/sleep"
SLEEPERS = [f"sleep-{i}" for i in range(4)]
FLOODS = ["flood-a", "flood-b"]  # restarted by the clients now and then
CRON_FLOOD = "flood-cron"  # restarted every second by the cron plugin
FORKER = "forker"  # leaves a worker in its own session: two processes, reached by treekill
RESTARTABLE = [*SLEEPERS, FORKER]
STEADY = [*SLEEPERS, *FLOODS, FORKER]  # online whenever nothing restarts them
CHURNING = [CRON_FLOOD, "crasher", "hog"]  # between runs at any moment
RECONNECT_WITHIN = 60.0  # seconds a client keeps trying to connect after its daemon died
JOIN_GRACE = 90.0  # past the window: a client thread still running then is stuck
SETTLE = 60.0  # seconds for the apps to settle after the load
RESTARTED = {"online", "stopping", "launching"}  # what a restart may answer (see test_load)
DESCRIBED = {"online", "launching", "stopping", "stopped", "waiting restart"}
GRACE = 3.0  # a run that ended this close before a kill may have lines left in its pipe

CRASHER = "import sys, time\ntime.sleep(0.3)\nsys.exit(1)\n"
FORK = f"""\
import os, signal, subprocess, time
signal.signal(signal.SIGINT, lambda *_: os._exit(0))
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
subprocess.Popen([{SLEEP!r}, "3600"], start_new_session=True)  # left running at exit
while True:
    time.sleep(3600)
"""
HOG = """\
import signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
held = []
while True:
    held.append(b"\\x01" * (4 << 20))  # written, so resident
    if len(held) > 64:
        held.clear()  # a bound in case the plugin is late
    time.sleep(0.05)
"""


def marked_processes(token: str) -> dict[str, list[int]]:
    """``{app name: live pids}`` of every process carrying this soak's marker."""
    return marked_processes_of(token, MARK)


def pipe_capacity() -> int:
    read, write = os.pipe()
    try:
        return fcntl.fcntl(read, fcntl.F_GETPIPE_SZ)
    finally:
        os.close(read)
        os.close(write)


def apps(token: str, folder: Path) -> list[dict]:
    def app(name: str, **options: object) -> dict:
        return {"name": name, "env": {MARK: f"{token}:{name}"}, **options}

    flood, reports = folder / "flood.py", folder / "runs"
    flood.write_text(FLOOD)
    reports.mkdir()
    (folder / "crasher.py").write_text(CRASHER)
    (folder / "hog.py").write_text(HOG)
    (folder / "forker.py").write_text(FORK)

    def flooder(name: str, **options: object) -> dict:
        return app(name, script=str(flood), args=[name, str(RATE), str(reports)], **options)

    return [
        *(app(name, script=SLEEP, args=["3600"]) for name in SLEEPERS),
        *(flooder(name) for name in FLOODS),
        flooder(CRON_FLOOD, cron_restart="*/1 * * * * *"),
        app("crasher", script=str(folder / "crasher.py"), restart_delay=500, max_restarts=10**6),
        app("hog", script=str(folder / "hog.py"), max_memory_restart="48M", memory_interval=200),
        app(FORKER, script=str(folder / "forker.py")),
    ]


class Worker:
    """One client thread: its own connection, a seeded mix of calls, what it saw."""

    ACTIONS = ("list", "list", "describe", "describe", "restart", "restart", "restart", "flood")

    def __init__(self, index: int, until: float, names: set[str]) -> None:
        self.index = index
        self.until = until
        self.names = names
        self.random = random.Random(SEED * 1000 + index)
        self.client: corral.Client | None = None
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.daemon_errors = 0
        self.reconnects = 0
        self.failures: list[str] = []

    def connect(self) -> None:
        if self.client is not None:
            self.client.disconnect()
        deadline = time.monotonic() + RECONNECT_WITHIN
        while True:
            try:
                self.client = corral.connect()
                return
            except DaemonError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # a retry's pace, not a wait for a condition

    def run(self) -> None:
        try:
            self.connect()
            while time.monotonic() < self.until:
                action = self.random.choice(self.ACTIONS)
                try:
                    getattr(self, f"do_{action}")()
                    self.calls[action] += 1
                except DaemonError:
                    self.daemon_errors += 1
                    self.connect()
                    self.reconnects += 1
                except (CorralError, AssertionError) as exc:
                    self.failures.append(f"client {self.index} {action}: {exc!r}")
                time.sleep(self.random.uniform(0.01, 0.05))  # think time, not a wait
        except Exception:
            self.failures.append(f"client {self.index}: {traceback.format_exc()}")
        finally:
            if self.client is not None:
                self.client.disconnect()

    def do_list(self) -> None:
        names = {p.name for p in self.client.list()}
        assert names == self.names, f"list shows {sorted(names)}"

    def do_describe(self) -> None:
        (info,) = self.client.describe(self.random.choice(sorted(self.names)))
        # "stopped" shows between the stop and the start of someone else's restart
        assert info.status in DESCRIBED, info.status
        self.statuses[info.status] += 1

    def do_restart(self) -> None:
        (info,) = self.client.restart(self.random.choice(RESTARTABLE))
        # a concurrent restart (another client's, a kill's recovery) may be stopping it already
        assert info.status in RESTARTED and info.pid, info.status

    def do_flood(self) -> None:
        (info,) = self.client.restart(self.random.choice(FLOODS))
        # a concurrent restart (another client's, a kill's recovery) may be stopping it already
        assert info.status in RESTARTED and info.pid, info.status


def daemons(home: Path) -> list[str]:
    """The daemons serving ``home``: ``pid (parent pid)``. A process the daemon forked and
    that has not exec'd its app yet looks like a daemon too: those are left out."""
    found = daemons_of(home)
    described = []
    for pid in found:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid).ppid()
            if parent not in found:
                described.append(f"{pid} (parent {parent})")
    return described


def kill_daemon(home: Path, token: str) -> tuple[Kill, float, int]:
    """SIGKILL the daemon now; the kill, how long a new daemon took to answer a list, its pid."""
    pid = read_daemon_pid(home)
    assert pid and alive(pid), f"no daemon to kill in {home}"
    floods = marked_processes(token)
    holder = home / "fdholder.pid"
    kill = Kill(time.time(), pid, {p for n in (*FLOODS, CRON_FLOOD) for p in floods.get(n, [])})
    with contextlib.suppress(OSError, ValueError):  # no holder, or one exiting
        kill.held = alive(int(holder.read_text()))
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (reap(pid), not alive(pid))[1], what=f"daemon {pid} gone")
    started = time.monotonic()
    again = wait_for(lambda: _connected(), timeout=RECONNECT_WITHIN, what="a new daemon")
    again.list()  # answered once the dead daemon's apps are recovered
    again.disconnect()
    return kill, time.monotonic() - started, again.daemon_pid


def _connected() -> corral.Client | None:
    try:
        return corral.connect()
    except DaemonError:
        return None


def settled(client: corral.Client, token: str, names: set[str]) -> list[str]:
    """What is wrong now (empty when right): each app's processes are exactly the one the
    daemon lists (steady apps online), and one daemon serves the home.

    The scan for marked processes reads every process's environment: seconds on a
    machine that runs thousands (other daemons' apps), longer than a churning app's
    run (crasher 0.8 s, cron flood 1 s). So a churning app's process counts as known
    if the daemon listed it before or after the scan, or if it is gone by then; only
    one that still runs unlisted is wrong (the list before the scan alone named the
    run before, and the first settle never came)."""
    wrong = []
    rows = {p.name: p for p in client.list()}
    running = marked_processes(token)
    known = {p.name: {rows[p.name].pid, p.pid} for p in client.list() if p.name in rows}
    if set(rows) != names:
        wrong.append(f"listed {sorted(rows)}")
    for name, info in rows.items():
        listed = [info.pid] if info.pid and alive(info.pid) else []
        if name == FORKER and listed:
            with contextlib.suppress(psutil.Error):
                listed += [c.pid for c in psutil.Process(info.pid).children()]
            if len(listed) != 2:
                wrong.append(f"{FORKER} pid {info.pid} has no worker yet")
        if name in STEADY and (info.status != "online" or running.get(name) != sorted(listed)):
            wrong.append(f"{name} {info.status} pid {info.pid}, processes {running.get(name)}")
        elif name in CHURNING:
            unknown = [p for p in running.get(name, []) if p not in known[name] and alive(p)]
            if unknown:
                wrong.append(f"{name} {info.status} pid {info.pid}, unlisted processes {unknown}")
    strays = sorted(set(running) - names)
    if strays:
        wrong.append(f"processes of no app: {strays}")
    serving = daemons(client.home)
    if [int(d.split()[0]) for d in serving] != [client.daemon_pid]:
        wrong.append(f"daemons {serving}, client talks to {client.daemon_pid}")
    return wrong


def wait_settled(client: corral.Client, token: str, names: set[str]) -> list[str]:
    """Wait up to SETTLE s for :func:`settled`; what it still saw wrong (empty: settled)."""
    last: list[list[str]] = [[]]

    def right_now() -> bool:
        last[0] = settled(client, token, names)
        return not last[0]

    with contextlib.suppress(AssertionError):
        wait_for(right_now, timeout=SETTLE, interval=0.2, what="settled")
    return last[0]


@pytest.fixture
def token(corral_home: Path):
    """This test's marker; at teardown whatever still carries it, and any daemon, is killed."""
    token = uuid.uuid4().hex[:12]
    yield token
    kill_pids([pid for pids in marked_processes(token).values() for pid in pids])
    kill_pids(daemons_of(corral_home))


def test_soak(corral_home: Path, tmp_path: Path, token: str, monkeypatch) -> None:
    monkeypatch.setenv("CORRAL_PLUGINS", "cron,memory")
    rng = random.Random(SEED)
    print(f"\nsoak: seed {SEED} (CORRAL_SOAK_SEED), {SECONDS:g} s, {CLIENTS} clients")
    config = apps(token, tmp_path)
    names = {a["name"] for a in config}
    problems: list[str] = []
    pm = corral.connect()
    pm.start(config)
    wrong = wait_settled(pm, token, names)
    if wrong:
        pytest.fail(f"apps up: not met within {SETTLE:g} s; still wrong: {wrong}")
    pm.disconnect()

    start = time.monotonic()
    until = start + SECONDS
    kill_at = sorted(start + SECONDS * rng.uniform(lo, lo + 0.2) for lo in (0.2, 0.6))
    print(f"soak: daemon kills at {[round(t - start, 1) for t in kill_at]} s")
    workers = [Worker(i, until, names) for i in range(CLIENTS)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    kills: list[Kill] = []
    extra: list[str] = []  # moments more than one daemon served the home
    most_rss = 0
    while time.monotonic() < until:
        if kill_at and time.monotonic() >= kill_at[0]:
            kill_at.pop(0)
            offset = time.monotonic() - start
            kill, took, new = kill_daemon(corral_home, token)
            kills.append(kill)
            print(
                f"soak: killed daemon {kill.daemon} at {offset:.1f} s ({len(kill.flood_pids)} "
                f"flood runs alive); daemon {new} answered {took:.2f} s later"
            )
        serving = daemons(corral_home)
        with contextlib.suppress(psutil.Error, IndexError, ValueError):
            rss = psutil.Process(int(serving[0].split()[0])).memory_info().rss
            most_rss = max(most_rss, rss)
        if len(serving) > 1:
            extra.append(f"{time.monotonic() - start:.1f} s: {serving}")
        time.sleep(0.25)  # the load's pace: nothing waits on this
    for thread in threads:
        thread.join(max(0.1, until + JOIN_GRACE - time.monotonic()))
    stuck = [w.index for w, t in zip(workers, threads, strict=True) if t.is_alive()]
    if stuck:
        problems.append(f"clients never answered (deadlock?): {stuck}")
    failures = [f for w in workers for f in w.failures]
    if failures:
        problems.append(f"{len(failures)} client errors, first: {failures[:3]}")
    if extra:
        problems.append(f"{len(extra)} samples saw two daemons, first: {extra[:3]}")

    final = corral.connect()
    wrong = wait_settled(final, token, names)
    if wrong:
        problems.append(f"not settled {SETTLE:g} s after the load, last sample: {wrong}")
    infos = {p.name: p for p in final.list()}
    logs = {n: (infos[n].out_log, infos[n].err_log) for n in (*FLOODS, CRON_FLOOD)}
    restarts = {n: p.restart_time for n, p in sorted(infos.items())}

    # stopped while the cron, memory and crash-loop restarts go on: nothing may outlive it
    final.kill_daemon()
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not marked_processes(token), timeout=30, what="apps gone")
    if marked_processes(token):
        problems.append(f"processes left after kill_daemon: {marked_processes(token)}")
    if daemons(corral_home):
        problems.append(f"daemons left after kill_daemon: {daemons(corral_home)}")

    runs, torn, other = account(logs, tmp_path / "runs")
    bound = pipe_capacity() // LINE + 1  # what a pipe holds, and a partial line
    lost: Counter[int] = Counter()
    written = in_log = 0
    unreported: list[str] = []  # runs killed before they could report
    for run in runs.values():
        key = f"{run.app} pid {run.pid} {run.stream}"
        in_log += run.in_log
        for what, count in (("duplicated", run.duplicates()), ("missing mid-run", run.holes())):
            if count:
                problems.append(f"{key}: {count} lines {what}")
        if run.out_of_order():
            problems.append(f"{key}: {run.out_of_order()} lines out of order")
        tail = run.lost_tail()
        if tail is None:
            at_kill = [k.daemon for k in kills if run.pid in k.flood_pids]
            unreported.append(f"{key}: {run.in_log} logged, alive at kill of {at_kill}")
            continue
        written += run.written or 0
        if tail < 0:
            problems.append(f"{key}: {-tail} more lines logged than written")
        elif tail:
            kill = run.caught_by(kills, GRACE)
            if kill is None:
                problems.append(f"{key}: last {tail} lines lost ({run.why}) with no daemon kill")
            elif kill.held:
                problems.append(f"{key}: {tail} lines lost at a kill though a holder held the pipe")
            elif tail > bound:
                problems.append(f"{key}: {tail} lines lost at a kill, a pipe holds {bound}")
            else:
                lost[kill.daemon] += tail
    if torn:
        problems.append(f"{len(torn)} torn lines, first: {torn[:3]}")

    calls = sum((w.calls for w in workers), Counter())
    statuses = sum((w.statuses for w in workers), Counter())
    print(
        f"soak: {sum(calls.values())} calls {dict(calls)}, "
        f"{sum(w.daemon_errors for w in workers)} calls lost to a dead daemon, "
        f"{sum(w.reconnects for w in workers)} reconnects, {len(failures)} client errors\n"
        f"soak: restarts {restarts}; describe saw {dict(statuses)}; "
        f"daemon RSS at most {most_rss / 2**20:.0f} MiB\n"
        f"soak: {len(runs) // 2} flood runs, {written} lines written by the runs that "
        f"reported, {in_log} in the logs, {len(unreported)} streams unreported "
        f"{unreported[:4]}, "
        f"lost per kill {dict(lost)} (bound {bound} per pipe, 0 with a pipe holder: "
        f"{[k.held for k in kills]}); "
        f"{len(other)} lines of other output (Python's own: {other[:2]})"
    )
    for problem in problems:
        print(f"soak PROBLEM: {problem}", file=sys.stderr)
    if problems:  # kept out of pytest's tmp_path, which other runs soon remove
        kept = Path(tempfile.mkdtemp(prefix=f"corral-soak-{SEED}-"))
        with contextlib.suppress(OSError):
            shutil.copy(corral_home / "corral.log", kept / "corral.log")
            shutil.copytree(tmp_path / "runs", kept / "runs")
        print(f"soak: the daemon's log and the runs' reports are in {kept}", file=sys.stderr)
    assert not problems, f"seed {SEED}: {len(problems)} problems, first: {problems[:5]}"
