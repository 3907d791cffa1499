"""What is measured, and how: one function per group of metrics, the same code for every tool.

A group function takes a :class:`~tools.Tool`, the :class:`~suite.Settings` and
the metrics to measure (those of the group the tool can do), and returns the
figures of one run (``{row name: value or list of samples}``) and the raw
details kept in the JSON output. It starts from a fresh home and leaves no
process behind, whether it succeeds or raises. Here: cold start, restart after
SIGKILL, log throughput, and the helpers every group polls with. The fleet group
(100 apps on one daemon) lives in :mod:`fleet`, the cluster group (a node app on
a shared port) in :mod:`cluster`, the bus group in :mod:`busbench`, the memory
limit and watch groups in :mod:`triggers`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import psutil
from suite import Result, Settings
from tools import APPS, BenchError, Tool, app_parents

FLEET = 100
MIB = 1024 * 1024
LINE_BYTES = 100
SLEEP_BIN = "/bin/sleep"


# -- shared files ---------------------------------------------------------------


def line(number: int) -> bytes:
    """Line ``number`` of the log benchmark: exactly LINE_BYTES bytes with its newline."""
    fill = chr(ord("a") + number % 26).encode() * (LINE_BYTES - 12)
    return b"%010d %s\n" % (number, fill)


def write_data(path: Path, count: int) -> None:
    with path.open("wb") as out:
        for first in range(0, count, 10_000):
            out.write(b"".join(line(n) for n in range(first, min(first + 10_000, count))))


def write_ecosystem(path: Path, apps: list[dict[str, Any]]) -> Path:
    """A PM2 JSON ecosystem file; corral reads the same file, the peers translate it."""
    path.write_text(json.dumps({"apps": apps}, indent=2))
    return path


def prepare(settings: Settings, wanted: set[str]) -> None:
    """Write the files every tool uses, once: ecosystem files and the log lines."""
    settings.root.mkdir(parents=True, exist_ok=True)
    python, sleep = settings.python, str(APPS / "sleep.py")
    fleet = [{"name": f"app-{i:03d}", "script": sleep, "interpreter": python} for i in range(FLEET)]
    write_ecosystem(settings.root / "fleet.json", fleet)
    # the same fleet without 100 interpreters to boot: closer to the manager's own cost
    binaries = [
        {"name": f"bin-{i:03d}", "script": SLEEP_BIN, "args": ["3600"], "interpreter": "none"}
        for i in range(FLEET)
    ]
    write_ecosystem(settings.root / "fleet-bin.json", binaries)
    lines = str(APPS / "lines.py")
    writer = {"name": "lines", "script": lines, "interpreter": python}
    write_ecosystem(settings.root / "lines.json", [{**writer, "args": [str(settings.data_file)]}])
    if "log_throughput" in wanted and not settings.data_file.exists():
        write_data(settings.data_file, settings.lines)


# -- polling helpers ------------------------------------------------------------


def online(processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of a listing that are online (circus lists no pid: see Tool.pids)."""
    return [p for p in processes if p.get("pm2_env", {}).get("status") == "online"]


def wait_jlist(
    tool: Tool, done: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 60
) -> list[dict[str, Any]]:
    """Poll the tool's listing (a CLI call each time) until ``done`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        processes = tool.jlist()
        if done(processes):
            return processes
        if time.monotonic() > deadline:
            states = Counter(p.get("pm2_env", {}).get("status") for p in processes)
            raise BenchError(
                f"{tool.label}: {what} not reached in {timeout:g} s; jlist shows {dict(states)}"
            )
        time.sleep(0.005)


def wait_online(tool: Tool, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    processes = wait_jlist(
        tool, lambda ps: len(online(ps)) >= count, f"{count} apps online", timeout
    )
    if len(processes) != count:
        raise BenchError(f"{tool.label}: expected {count} apps, jlist shows {len(processes)}")
    tool.track(p["pid"] for p in processes)
    return processes


def wait_pids(tool: Tool, name: str, done: Callable[[list[int]], bool], what: str) -> list[int]:
    """Poll the pids of app ``name`` (a CLI call each time) until ``done`` holds."""
    deadline = time.monotonic() + 60
    while True:
        pids = tool.pids(name)
        if done(pids):
            tool.track(pids)
            return pids
        if time.monotonic() > deadline:
            raise BenchError(f"{tool.label}: {what} not reached in 60 s; {name} has pids {pids}")
        time.sleep(0.005)


def require_daemon(tool: Tool) -> psutil.Process:
    daemon = tool.daemon()
    if daemon is None:
        raise BenchError(f"{tool.label}: no running daemon in {tool.home}/{tool.pid_name}")
    return daemon


def shutdown(tool: Tool) -> None:
    """Stop the tool's daemon and apps; a problem is a warning, not a failed run."""
    problem = tool.shutdown()
    if problem:
        print(f"  warning: {problem}", file=sys.stderr, flush=True)


# -- the groups -----------------------------------------------------------------


def cold_start(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """No daemon -> `start app` -> `jlist` shows it online with a pid."""
    values, raw = {}, {}
    values["cold_start"], raw["cli_s"] = _cold_once(tool, APPS / "sleep.py")
    if tool.label == "pm2" and settings.node:
        values["cold_start_pm2_node"], raw["node_cli_s"] = _cold_once(tool, APPS / "sleep.js")
    return values, raw


def _cold_once(tool: Tool, script: Path) -> tuple[float, float]:
    tool.new_home()
    try:
        t0 = perf_counter()
        tool.start_script(script, "app")
        cli = perf_counter() - t0
        wait_online(tool, 1)
        return perf_counter() - t0, cli
    finally:
        shutdown(tool)


def restart_after_sigkill(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """SIGKILL the app's pid; time until a new child of the daemon runs the script.

    A daemon that looks for dead children every ``poll_period`` (supervisor,
    circus) is killed at a random moment of that cycle, as a crash would be:
    right after the listing that woke it, every kill would wait a whole period.
    """
    home = tool.new_home()
    kills = tool.restart_kills or settings.kills
    stamps = home / "stamps.txt"
    app = {
        "name": "victim",
        "script": str(APPS / "stamp.py"),
        "interpreter": settings.python,
        "args": [str(stamps)],
        "max_restarts": 100_000,  # every kill is an "unstable" restart (< min_uptime)
    }
    try:
        tool.start_file(write_ecosystem(home / "restart.json", [app]))
        wait_online(tool, 1)
        (pid,) = wait_pids(tool, "victim", lambda pids: len(pids) == 1, "one pid")
        daemon = require_daemon(tool)
        exec_ms, killed_ns, new_pids = [], [], []
        for _ in range(kills):
            if tool.poll_period:
                time.sleep(random.uniform(0, tool.poll_period))
            before = set(psutil.pids())
            killed_ns.append(time.monotonic_ns())
            t0 = perf_counter()
            os.kill(pid, signal.SIGKILL)
            pid, t1 = new_child(daemon, before, "stamp.py", t0)
            exec_ms.append((t1 - t0) * 1000)
            new_pids.append(pid)
            _wait_pid_online(tool, pid)
            # and its stamp: a daemon that lists it online at once would see it killed first
            wait_stamps(stamps, "start", len(new_pids) + 1, 30)
        restarts = tool.jlist()[0]["pm2_env"].get("restart_time")
        if restarts is not None and restarts != kills:  # the peers count none
            raise BenchError(f"{tool.label}: restart_time is {restarts} after {kills} kills")
        started = {s[2]: s[1] for s in wait_stamps(stamps, "start", kills + 1, 30)}
        stamped_ms = [(started[p] - k) / 1e6 for p, k in zip(new_pids, killed_ns, strict=True)]
    finally:
        shutdown(tool)
    values = {
        "restart_after_sigkill": statistics.median(exec_ms),
        "restart_stamped": statistics.median(stamped_ms),
    }
    return values, {"kills_ms": exec_ms, "stamped_ms": stamped_ms}


def new_child(
    daemon: psutil.Process, before: set[int], script: str, t0: float
) -> tuple[int, float]:
    """Poll every 0.2 ms for a new child of the daemon that has exec'd ``script``."""
    find = _find_in_proc if os.path.isdir("/proc/self") else _find_with_psutil
    known = set(before)
    parents = app_parents(daemon)
    while True:
        pid = find(parents, known, script)
        if pid:
            return pid, perf_counter()
        if perf_counter() - t0 > 10:
            raise BenchError(f"no new process running {script} 10 s after SIGKILL")
        time.sleep(0.0002)


def _find_in_proc(parents: set[int], known: set[int], script: str) -> int | None:
    """Linux: look only at pids not seen before (psutil's children() reads every pid's
    stat, 0.6 ms a call here, 25 times a listing of /proc)."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in known:
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) not in parents:
                known.add(pid)  # someone else's process: never read it again
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if any(arg.endswith(script.encode()) for arg in argv):
            return pid
    return None  # a child still between fork and exec is looked at again next time


def _find_with_psutil(parents: set[int], known: set[int], script: str) -> int | None:
    children = []
    for parent in parents:
        with contextlib.suppress(psutil.Error):
            children += psutil.Process(parent).children()
    for child in children:
        if child.pid in known:
            continue
        try:
            if any(arg.endswith(script) for arg in child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


def _wait_pid_online(tool: Tool, pid: int) -> None:
    wait_pids(tool, "victim", lambda pids: pids == [pid], f"the restarted pid {pid} online")


def log_throughput(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """Start an app copying N lines to stdout; time until the out log holds the last one."""
    home = tool.new_home()
    try:
        tool.ping()
        # corral and PM2 default to <home>/logs/<name>-out.log, jlist confirms it after the
        # clock; the peers' configs written by the bench say so
        path = home / "logs" / "lines-out.log"
        size = settings.lines * LINE_BYTES
        t0 = perf_counter()
        tool.start_file(settings.root / "lines.json")
        _wait_log(path, size, line(settings.lines - 1), timeout=max(60, settings.lines / 5000))
        spent = perf_counter() - t0
        (entry,) = tool.jlist()
        tool.track(tool.pids("lines"))
        reported = entry.get("pm2_env", {}).get("pm_out_log_path", str(path))
        if Path(reported).resolve() != path.resolve():
            raise BenchError(f"{tool.label}: jlist says the out log is {reported}, not {path}")
        check = check_log(path, settings.data_file, settings.lines)
        return {"log_throughput": spent}, {"log_check": check}
    finally:
        shutdown(tool)


def _wait_log(path: Path, size: int, last: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            have = path.stat().st_size
            if have >= size and _ends_with(path, last):
                return
        except FileNotFoundError:
            have = 0
        if time.monotonic() > deadline:
            raise BenchError(f"after {timeout:g} s {path} holds {have} of {size} bytes")
        time.sleep(0.001)


def _ends_with(path: Path, tail: bytes) -> bool:
    with path.open("rb") as f:
        f.seek(-len(tail), os.SEEK_END)
        return f.read() == tail


def check_log(path: Path, data: Path, count: int) -> dict[str, int]:
    """Lines lost, duplicated and torn (not exactly an expected line), and extra bytes."""
    got = path.read_bytes()
    if got == data.read_bytes():
        return {"lines": count, "lost": 0, "duplicated": 0, "torn": 0}
    seen: Counter[int] = Counter()
    torn = 0
    for text in got.splitlines(keepends=True):
        try:
            number = int(text[:10])
        except ValueError:
            number = -1
        if 0 <= number < count and text == line(number):
            seen[number] += 1
        else:
            torn += 1
    return {
        "lines": sum(seen.values()),
        "lost": count - len(seen),
        "duplicated": sum(seen.values()) - len(seen),
        "torn": torn,
    }


# -- stamps: what the apps write when they start ----------------------------------

Stamp = tuple[str, int, int]  # kind, CLOCK_MONOTONIC ns, pid


def wait_stamps(path: Path, kind: str, count: int, timeout: float) -> list[Stamp]:
    """Poll ``path`` until it holds ``count`` stamps of ``kind``; all its stamps, in order."""
    deadline = time.monotonic() + timeout
    while True:
        stamps = read_stamps(path)
        found = [s for s in stamps if s[0] == kind]
        if len(found) >= count:
            return stamps
        if time.monotonic() > deadline:
            raise BenchError(f"{len(found)} of {count} '{kind}' stamps after {timeout:g} s")
        time.sleep(0.01)  # the figure is the app's own stamp: polling faster gains nothing


def starts_of(stamps: list[Stamp]) -> list[Stamp]:
    return [s for s in stamps if s[0] == "start"]


def read_stamps(path: Path) -> list[Stamp]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    stamps = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n"):  # a line still being written is read next time
            kind, ns, pid = line.split()
            stamps.append((kind, int(ns), int(pid)))
    return stamps
