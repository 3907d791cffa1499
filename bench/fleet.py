"""The fleet group: 100 apps from one ecosystem file, each session on a fresh daemon.

A run has up to two sessions per tool, each starting from ``ping`` and a settle:

- 100 ``/bin/sleep 3600`` (``start_100_bin``): the start time without 100 Python
  interpreters booting on the machine's cores, which dominate ``start_100``;
- 100 Python apps: ``start_100`` and the daemon's CPU time during it, then, with
  the apps online, memory, CPU while idle, then the listing times (last, since
  they wake the daemon): through the API over one warm connection
  (``api_list_warm``), and with the CLI (``list_100``).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from time import perf_counter
from typing import Any

import psutil
from metrics import FLEET, MIB, SLEEP_BIN, online, require_daemon, shutdown, wait_online
from suite import Result, Settings
from tools import BenchError, Tool, app_children, run_command

PYTHON_FLEET = {"start_100", "list_100", "api_list_warm", "daemon_rss_100", "idle_cpu_100"}


def fleet(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """100 binaries on one daemon, then 100 Python apps on another (what ``wanted`` asks)."""
    values: dict[str, float] = {}
    raw: dict[str, Any] = {}
    if "start_100_bin" in wanted:
        _binaries(tool, settings, values, raw)
    if wanted & PYTHON_FLEET:
        _python_apps(tool, settings, wanted, values, raw)
    return values, raw


def _binaries(tool: Tool, settings: Settings, values: dict[str, float], raw: dict) -> None:
    tool.new_home()
    try:
        daemon = _settled_daemon(tool, settings)
        path = settings.root / "fleet-bin.json"
        processes, values["start_100_bin"], cpu = _start(tool, daemon, path, "start_100_bin", raw)
        raw["start_100_bin_daemon_cpu_ms"] = cpu
        pids = _app_pids(daemon, processes)
        argvs = [psutil.Process(pid).cmdline() for pid in pids]
        odd = [argv for argv in argvs if argv != [SLEEP_BIN, "3600"]]
        if len(pids) != FLEET or odd:
            raise BenchError(f"{tool.label}: {len(pids)} apps, {len(odd)} not sleeping: {odd[:3]}")
    finally:
        shutdown(tool)


def _python_apps(
    tool: Tool, settings: Settings, wanted: set[str], values: dict[str, float], raw: dict
) -> None:
    tool.new_home()
    try:
        daemon = _settled_daemon(tool, settings)
        if "daemon_rss_100" in wanted:
            values["daemon_rss_0"], values["daemon_uss_0"] = memory([daemon])
        processes, spent, cpu = _start(tool, daemon, settings.root / "fleet.json", "start_100", raw)
        values["start_100"], values["daemon_cpu_start_100"] = spent, cpu
        time.sleep(settings.settle_seconds)
        own = [daemon, *helpers_of(daemon, _app_pids(daemon, processes))]
        raw["daemon_processes"] = len(own)
        if "daemon_rss_100" in wanted:
            values["daemon_rss_100"], values["daemon_uss_100"] = memory(own)
        if "idle_cpu_100" in wanted:
            before = cpu_seconds(own)
            time.sleep(settings.idle_seconds)
            after = cpu_seconds(own)
            values["idle_cpu_100"] = (after[0] - before[0]) * 1000
            raw["idle_cpu_times_ms"] = (after[1] - before[1]) * 1000
            raw["idle_window_s"] = settings.idle_seconds
        if "api_list_warm" in wanted:
            values["api_list_warm"], raw["api_list_ms"] = _api_list(tool, settings.api_calls)
        if "list_100" in wanted:
            calls = [_timed_list(tool) for _ in range(3)]
            values["list_100"] = statistics.median(calls) * 1000
            raw["list_calls_ms"] = [c * 1000 for c in calls]
    finally:
        shutdown(tool)


def _settled_daemon(tool: Tool, settings: Settings) -> psutil.Process:
    tool.ping()
    daemon = require_daemon(tool)
    time.sleep(settings.settle_seconds)  # let the fresh daemon go idle
    return daemon


def _start(
    tool: Tool, daemon: psutil.Process, path: Path, name: str, raw: dict[str, Any]
) -> tuple[list[dict[str, Any]], float, float]:
    """`start <path>` -> all FLEET online: the apps, the wall time and the daemon's CPU ms.

    The daemon's CPU counts its own threads only (not the apps once forked), and
    includes answering the ``jlist`` polls; their number goes to ``raw``, with
    the CPU time read from cpu_times.
    """
    cpu_before, polls = cpu_seconds([daemon]), tool.jlists
    t0 = perf_counter()
    tool.start_file(path)
    processes = wait_online(tool, FLEET, timeout=180)
    spent = perf_counter() - t0
    cpu_after = cpu_seconds([daemon])
    raw[f"{name}_daemon_cpu_times_ms"] = (cpu_after[1] - cpu_before[1]) * 1000
    raw[f"{name}_jlist_polls"] = tool.jlists - polls
    return processes, spent, (cpu_after[0] - cpu_before[0]) * 1000


def _timed_list(tool: Tool) -> float:
    t0 = perf_counter()
    processes = tool.jlist()
    spent = perf_counter() - t0
    if len(online(processes)) != FLEET:
        raise BenchError(f"{tool.label} list: {len(online(processes))} apps online, not {FLEET}")
    return spent


def _api_list(tool: Tool, calls: int) -> tuple[float, list[float]]:
    """The median time of ``calls`` listings over one connection, by the tool's own client."""
    out = run_command(tool.api_list_argv(calls), tool.env(), timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    if result["apps"] != FLEET:
        raise BenchError(f"{tool.label}: the API listed {result['apps']} apps, not {FLEET}")
    return statistics.median(result["ms"]), result["ms"]


def _app_pids(daemon: psutil.Process, processes: list[dict[str, Any]]) -> set[int]:
    """The apps' pids: from the listing, or the daemon's children where it has none."""
    pids = {p["pid"] for p in processes if p.get("pid")}
    return pids or {c.pid for c in app_children(daemon)}


# -- what the daemon uses ---------------------------------------------------------


def helpers_of(daemon: psutil.Process, app_pids: set[int]) -> list[psutil.Process]:
    """The daemon's own descendants that are no app and no app's child (none, usually)."""
    inside = set(app_pids)
    for pid in app_pids:
        try:
            inside.update(c.pid for c in psutil.Process(pid).children(recursive=True))
        except psutil.Error:
            continue
    return [c for c in daemon.children(recursive=True) if c.pid not in inside]


def memory(procs: list[psutil.Process]) -> tuple[float, float]:
    """RSS and USS in MiB, summed."""
    infos = [p.memory_full_info() for p in procs]
    return sum(i.rss for i in infos) / MIB, sum(i.uss for i in infos) / MIB


def cpu_seconds(procs: list[psutil.Process]) -> tuple[float, float]:
    """CPU time used so far: per-thread schedstat (ns), and psutil's cpu_times (clock ticks).

    A daemon idle for 10 s uses a few ms, below the 10 ms tick of cpu_times, so
    the table uses schedstat where Linux has it; cpu_times is kept in the JSON.
    """
    ticks = sum(t.user + t.system for t in (p.cpu_times() for p in procs))
    try:
        precise = sum(_schedstat_seconds(p.pid) for p in procs)
    except OSError:
        precise = ticks
    return precise, ticks


def _schedstat_seconds(pid: int) -> float:
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that just ended
    return total / 1e9
