"""The floor of restart_after_sigkill: the same clock on a supervisor that does nothing else.

``apps/floor_supervisor.py`` respawns ``apps/stamp.py`` the moment it dies; this
script SIGKILLs the app and times, with the very poll ``restart_after_sigkill``
uses (:func:`metrics.new_child`), until a new child runs the script. What it
measures is the kernel's teardown of the killed Python, one ``posix_spawn``, the
new interpreter's exec and the poll's own latency: no process manager restarts an
app faster on this machine. It prints min / median / max in ms::

    python bench/restart_floor.py --python /tmp/bench-venv/bin/python --kills 40
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from time import perf_counter

import psutil
from metrics import new_child
from tools import APPS, BenchError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the apps' Python")
    parser.add_argument("--kills", type=int, default=40, help="kills to time (default 40)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        samples = measure(args.python, args.kills, Path(tmp) / "stamps.txt")
    print(
        f"restart floor over {len(samples)} kills, ms: min {min(samples):.2f} / "
        f"median {statistics.median(samples):.2f} / max {max(samples):.2f}"
    )
    return 0


def measure(python: str, kills: int, stamps: Path) -> list[float]:
    """SIGKILL the floor supervisor's app ``kills`` times; the ms until each new one ran."""
    app = [python, str(APPS / "stamp.py"), str(stamps)]
    supervisor = subprocess.Popen([python, str(APPS / "floor_supervisor.py"), *app])
    parent = psutil.Process(supervisor.pid)
    pid = 0
    try:
        pid = _first_child(parent)
        samples = []
        for _ in range(kills):
            time.sleep(0.3)  # as the bench's metric: the app is settled before each kill
            before = set(psutil.pids())
            t0 = perf_counter()
            os.kill(pid, signal.SIGKILL)
            pid, t1 = new_child(parent, before, "stamp.py", t0)
            samples.append((t1 - t0) * 1000)
        return samples
    finally:
        supervisor.kill()
        supervisor.wait()
        if pid:
            os.kill(pid, signal.SIGKILL)


def _first_child(parent: psutil.Process) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for child in parent.children():
            try:
                if any(arg.endswith("stamp.py") for arg in child.cmdline()):
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(0.01)
    raise BenchError("the floor supervisor started no app in 10 s")


if __name__ == "__main__":
    sys.exit(main())
