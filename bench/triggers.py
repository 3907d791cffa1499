"""Restarts the manager triggers itself: a memory limit crossed, a watched file changed.

Both groups time a restart from the moment its cause exists to the moment the
replacement runs, read from stamps the apps append to a file (CLOCK_MONOTONIC,
the same clock in every process here):

- ``memory_limit_latency``: ``bench/apps/hog.py`` stamps its start, allocates
  HOG_MIB (written, so resident), stamps that, and sleeps; its limit is
  LIMIT. Latency = from the ``alloc`` stamp to the next ``start`` stamp. corral
  runs with the memory plugin (``max_memory_restart``, sampled every second);
  PM2 with ``max_memory_restart`` and its defaults (checked every 30 s, so a
  sample is anywhere in 0-30 s); circus with its resource_watcher plugin, set to
  sample every second and act on the first sample over. The app allocates at a
  random moment of the tool's sampling period (``memory_period``), as a leak
  would: allocating right after its start would always wait a whole period. A
  run has ``memory_samples`` samples; the runs of this group are capped
  (``--memory-runs``).
- ``watch_restart_latency``: ``bench/apps/stamp.py`` stamps its start and
  sleeps, with its ``cwd`` watched (``watch: true``: corral's watch plugin, PM2's
  ``--watch``). The bench writes a file in that directory, then waits for the
  next ``start`` stamp; ``touches`` samples per run.

Every sample is a figure of the table (not one per run).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from metrics import (
    Stamp,
    read_stamps,
    require_daemon,
    shutdown,
    starts_of,
    wait_online,
    wait_pids,
    wait_stamps,
    write_ecosystem,
)
from suite import Result, Settings
from tools import APPS, BenchError, Tool

HOG_MIB = 100
LIMIT = "50M"
MEMORY_TIMEOUT = 90.0  # PM2 looks every 30 s
WATCH_TIMEOUT = 20.0
WATCH_SETTLE = 0.5  # after a restart, before the next touch: the watcher is armed again


def memory_limit(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """An app over its limit, ``memory_samples`` times; seconds from each excess to its
    replacement's start."""
    home = tool.new_home(features=("memory",))
    stamps = home / "stamps.txt"
    samples = settings.memory_samples
    app = {
        "name": "hog",
        "script": str(APPS / "hog.py"),
        "interpreter": settings.python,
        "args": [str(stamps), str(HOG_MIB), str(samples), str(tool.memory_period)],
        "max_memory_restart": LIMIT,
        "max_restarts": 100_000,
    }
    try:
        tool.start_file(write_ecosystem(home / "hog.json", [app]))
        require_daemon(tool)
        stamped = wait_stamps(stamps, "start", samples + 1, MEMORY_TIMEOUT * (samples + 1))
        wait_online(tool, 1)
        tool.track(tool.pids("hog"))
    finally:
        shutdown(tool)
    latencies = _alloc_to_start(stamped, samples)
    return {"memory_limit_latency": latencies}, {"memory_limit_s": latencies}


def _alloc_to_start(lines: list[Stamp], samples: int) -> list[float]:
    """Seconds from each ``alloc`` to the next ``start`` (by another pid)."""
    latencies = []
    for i, (kind, ns, pid) in enumerate(lines):
        if kind != "alloc":
            continue
        after = next(((k, n, p) for k, n, p in lines[i + 1 :] if k == "start"), None)
        if after is None or after[2] == pid:
            raise BenchError(f"no replacement started after the allocation of pid {pid}")
        latencies.append((after[1] - ns) / 1e9)
    if len(latencies) != samples:
        raise BenchError(f"{len(latencies)} allocations stamped, not {samples}")
    return latencies


def watch(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """Write a file in the watched directory ``touches`` times; ms to each new start stamp."""
    home = tool.new_home(features=("watch",))
    # outside the home: corral never watches CORRAL_HOME
    watched = Path(tempfile.mkdtemp(prefix=f"watched-{tool.label}-", dir=settings.root))
    stamps = home / "stamps.txt"
    app = {
        "name": "watched",
        "script": str(APPS / "stamp.py"),
        "interpreter": settings.python,
        "args": [str(stamps)],
        "cwd": str(watched),
        "watch": True,
    }
    latencies = []
    try:
        tool.start_file(write_ecosystem(home / "watched.json", [app]))
        wait_stamps(stamps, "start", 1, WATCH_TIMEOUT)
        time.sleep(settings.settle_seconds)  # the watcher's first scan
        for n in range(1, settings.touches + 1):
            t0 = time.monotonic_ns()
            (watched / "config.txt").write_text(f"change {n}\n")
            starts = starts_of(wait_stamps(stamps, "start", n + 1, WATCH_TIMEOUT))
            latencies.append((starts[n][1] - t0) / 1e6)
            wait_pids(tool, "watched", lambda pids, p=starts[n][2]: pids == [p], "the new child")
            time.sleep(WATCH_SETTLE)
        if len(starts_of(read_stamps(stamps))) != settings.touches + 1:
            raise BenchError(f"{tool.label}: more restarts than files written")
    finally:
        shutdown(tool)
        shutil.rmtree(watched, ignore_errors=True)
    return {"watch_restart_latency": latencies}, {"watch_ms": latencies}
