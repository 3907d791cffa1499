"""What is measured, and how: one function per group of metrics, the same code for both tools.

A group function takes a :class:`~tools.Tool` and returns the figures of one run
(``{row name: value}``) and the raw details kept in the JSON output. It starts
from a fresh home and leaves no process behind, whether it succeeds or raises.
The fleet group (100 apps on one daemon) lives in :mod:`fleet`, the cluster
group (a node app on a shared port) in :mod:`cluster`, the bus group in
:mod:`busbench`.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import psutil
from tools import BenchError, Tool

APPS = Path(__file__).resolve().parent / "apps"
FLEET = 100
MIB = 1024 * 1024
LINE_BYTES = 100
SLEEP_BIN = "/bin/sleep"


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    name: str
    metric: str  # the --only name that selects it
    unit: str
    goal: float | None  # the corral/PM2 ratio to stay under (over, if higher_is_better)
    about: str
    pm2_only: bool = False
    higher_is_better: bool = False
    limit: float | None = None  # a bound on corral's own figure, in every run (from the issue)


ROWS = (
    Row("cold_start", "cold_start", "s", 0.3, "no daemon -> one Python app online"),
    Row(
        "cold_start_pm2_node",
        "cold_start",
        "s",
        None,
        "note: PM2 with a node app (ratio is corral's Python app over it)",
        pm2_only=True,
    ),
    Row("start_100", "start_100", "s", 0.5, "100 Python apps (one ecosystem file) -> all online"),
    Row(
        "daemon_cpu_start_100",
        "start_100",
        "CPU ms",
        None,
        "CPU time of the daemon process during start_100",
    ),
    Row("start_100_bin", "start_100_bin", "s", 0.5, "100 `/bin/sleep 3600` apps -> all online"),
    Row(
        "restart_after_sigkill",
        "restart_after_sigkill",
        "ms",
        0.3,
        "SIGKILL the app -> new process running (median of the kills in a run)",
    ),
    Row("jlist_100", "jlist_100", "ms", 0.4, "`jlist` with 100 apps (median of 3 calls)"),
    Row("daemon_rss_100", "daemon_rss_100", "MiB", 0.4, "daemon RSS with 100 apps"),
    Row("daemon_uss_100", "daemon_rss_100", "MiB", None, "daemon USS with 100 apps"),
    Row("daemon_rss_0", "daemon_rss_100", "MiB", None, "daemon RSS with no app"),
    Row("daemon_uss_0", "daemon_rss_100", "MiB", None, "daemon USS with no app"),
    Row("idle_cpu_100", "idle_cpu_100", "CPU ms", 1.0, "daemon CPU time while idle, 100 apps"),
    Row("log_throughput", "log_throughput", "s", 0.5, "start -> every line in the out log"),
    Row(
        "reload_failed",
        "reload_under_load",
        "req/reload",
        None,
        "failed requests (errors + 2 s timeouts) per reload, 4 node instances under load",
        limit=0,
    ),
    Row(
        "reload_time",
        "reload_under_load",
        "s",
        1.0,
        "wall time of `reload web` (4 instances) under load, median of the run's reloads",
    ),
    Row(
        "rps_cluster",
        "rps_cluster",
        "req/s",
        1.0,
        "requests/s through the shared port, 4 node instances, a connection per request",
        higher_is_better=True,
    ),
    Row(
        "bus_events",
        "bus_throughput",
        "events/s",
        None,
        "log:out events/s at one subscriber, a child writing lines as fast as it can",
        higher_is_better=True,
    ),
    Row(
        "bus_lines",
        "bus_throughput",
        "lines/s",
        None,
        "log lines/s those events carry",
        higher_is_better=True,
    ),
    Row(
        "bus_latency",
        "bus_latency",
        "ms",
        None,
        "child's send -> subscriber, median of 200 messages",
        limit=1.0,
    ),
    Row("bus_latency_p99", "bus_latency", "ms", None, "child's send -> subscriber, p99"),
)

METRICS = tuple(dict.fromkeys(row.metric for row in ROWS))


@dataclass
class Settings:
    """What a run of the suite is asked for; files shared by both tools live in ``root``."""

    root: Path
    python: str
    lines: int
    idle_seconds: float
    settle_seconds: float
    kills: int = 20
    node: bool = True
    window_seconds: float = 5.0  # rps_cluster's and bus_throughput's measuring window
    reloads: int = 3

    @property
    def data_file(self) -> Path:
        return self.root / f"lines-{self.lines}.txt"


Result = tuple[dict[str, float], dict[str, Any]]


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
    """A PM2 JSON ecosystem file; corral reads the same file."""
    path.write_text(json.dumps({"apps": apps}, indent=2))
    return path


def prepare(settings: Settings, wanted: set[str]) -> None:
    """Write the files every tool uses, once: ecosystem files and the log lines."""
    python, sleep = settings.python, str(APPS / "sleep.py")
    fleet = [{"name": f"app-{i:03d}", "script": sleep, "interpreter": python} for i in range(FLEET)]
    write_ecosystem(settings.root / "fleet.json", fleet)
    # the same fleet without 100 interpreters to boot: closer to the manager's own cost
    binaries = [
        {"name": f"bin-{i:03d}", "script": SLEEP_BIN, "args": ["3600"], "interpreter": "none"}
        for i in range(FLEET)
    ]
    write_ecosystem(settings.root / "fleet-bin.json", binaries)
    # every kill is an "unstable" restart (< min_uptime): lift max_restarts for both tools
    one = {"name": "victim", "script": sleep, "interpreter": python, "max_restarts": 100_000}
    write_ecosystem(settings.root / "restart.json", [one])
    lines = str(APPS / "lines.py")
    writer = {"name": "lines", "script": lines, "interpreter": python}
    write_ecosystem(settings.root / "lines.json", [{**writer, "args": [str(settings.data_file)]}])
    if "log_throughput" in wanted and not settings.data_file.exists():
        write_data(settings.data_file, settings.lines)


# -- polling helpers ------------------------------------------------------------


def online(processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in processes if p.get("pid") and p.get("pm2_env", {}).get("status") == "online"]


def wait_jlist(
    tool: Tool, done: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 60
) -> list[dict[str, Any]]:
    """Poll ``jlist`` (a CLI call each time) until ``done`` holds."""
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
    """SIGKILL the app's pid; time until a new child of the daemon runs the script."""
    tool.new_home()
    try:
        tool.start_file(settings.root / "restart.json")
        pid = wait_online(tool, 1)[0]["pid"]
        daemon = require_daemon(tool)
        samples = []
        for _ in range(settings.kills):
            before = set(psutil.pids())
            t0 = perf_counter()
            os.kill(pid, signal.SIGKILL)
            pid, t1 = _new_child(daemon, before, "sleep.py", t0)
            samples.append((t1 - t0) * 1000)
            _wait_pid_online(tool, pid)
        restarts = tool.jlist()[0]["pm2_env"].get("restart_time")
        if restarts != settings.kills:
            raise BenchError(
                f"{tool.label}: restart_time is {restarts} after {settings.kills} kills"
            )
        return {"restart_after_sigkill": statistics.median(samples)}, {"kills_ms": samples}
    finally:
        shutdown(tool)


def _new_child(
    daemon: psutil.Process, before: set[int], script: str, t0: float
) -> tuple[int, float]:
    """Poll every 0.2 ms for a new child of the daemon that has exec'd ``script``."""
    find = _find_in_proc if os.path.isdir("/proc/self") else _find_with_psutil
    known = set(before)
    while True:
        pid = find(daemon, known, script)
        if pid:
            return pid, perf_counter()
        if perf_counter() - t0 > 10:
            raise BenchError(f"no new process running {script} 10 s after SIGKILL")
        time.sleep(0.0002)


def _find_in_proc(daemon: psutil.Process, known: set[int], script: str) -> int | None:
    """Linux: look only at pids not seen before (psutil's children() reads every pid's
    stat, 0.6 ms a call here, 25 times a listing of /proc)."""
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in known:
            continue
        pid = int(name)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) != daemon.pid:
                known.add(pid)  # someone else's process: never read it again
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            continue
        if any(arg.endswith(script.encode()) for arg in argv):
            return pid
    return None  # a child still between fork and exec is looked at again next time


def _find_with_psutil(daemon: psutil.Process, known: set[int], script: str) -> int | None:
    for child in daemon.children():
        if child.pid in known:
            continue
        try:
            if any(arg.endswith(script) for arg in child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    return None


def _wait_pid_online(tool: Tool, pid: int) -> None:
    wait_jlist(
        tool,
        lambda ps: [p.get("pid") for p in online(ps)] == [pid],
        f"the restarted pid {pid} online",
    )
    tool.track([pid])


def log_throughput(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """Start an app copying N lines to stdout; time until the out log holds the last one."""
    home = tool.new_home()
    try:
        tool.ping()
        # both tools default to <home>/logs/<name>-out.log; jlist confirms it after the clock
        path = home / "logs" / "lines-out.log"
        size = settings.lines * LINE_BYTES
        t0 = perf_counter()
        tool.start_file(settings.root / "lines.json")
        _wait_log(path, size, line(settings.lines - 1), timeout=max(60, settings.lines / 5000))
        spent = perf_counter() - t0
        (entry,) = tool.jlist()
        tool.track([entry.get("pid")])
        reported = entry.get("pm2_env", {}).get("pm_out_log_path")
        if not reported or Path(reported).resolve() != path.resolve():
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


GROUP_OF = {
    "cold_start": "cold_start",
    "restart_after_sigkill": "restart_after_sigkill",
    "start_100": "fleet",
    "start_100_bin": "fleet",
    "jlist_100": "fleet",
    "daemon_rss_100": "fleet",
    "idle_cpu_100": "fleet",
    "log_throughput": "log_throughput",
    "rps_cluster": "cluster",
    "reload_under_load": "cluster",
    "bus_throughput": "bus",
    "bus_latency": "bus",
}
