"""Measure the memory plugin: the daemon's CPU while it samples, and how fast it restarts.

Not a test (it takes about two minutes and never fails on a figure). Run:

    python -m tests.plugins.memory.measure            # both
    python -m tests.plugins.memory.measure cpu --apps 100 --seconds 30
    python -m tests.plugins.memory.measure latency --runs 10

``cpu`` runs a daemon in a child process with N apps (``/bin/sleep``, or
sleeping Python processes with ``--python``), waits until they are online,
and reads the daemon process's CPU time (user + system, every thread) over
the window, twice: with ``max_memory_restart`` set on every app and without
it (the daemon idling with the plugin loaded), and prints both as % of one
core. It also times one sampling pass over the N trees, and the same figure
read through psutil's ``children(recursive=True)`` for comparison.

``latency`` starts an app that allocates 60 MB at a random moment after each
start, with a 40M limit and the default 1 s interval, and prints the time from
the allocation to the restart event of each run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

import corral
from corral.plugins import memory
from corral.supervisor.monitor import TreeSampler

MB = 1024**2
SLEEPER = Path(__file__).parents[2] / "apps" / "sleeper.py"


# -- the daemon under measure (runs in a child process) ------------------------


def serve(apps: int, limit: str | None, python: bool) -> None:
    """An in-process daemon with ``apps`` sleeping apps; prints its pid and the roots, then
    waits until stdin closes."""
    with corral.connect(no_daemon=True, plugins=[memory]) as pm:
        for i in range(apps):
            if python:
                options = {"script": str(SLEEPER), "exec_interpreter": sys.executable}
            else:
                options = {"script": "/bin/sleep", "exec_interpreter": "none", "args": ["3600"]}
            options.update(name=f"s{i}", disable_logs=True)
            if limit:
                options["max_memory_restart"] = limit
            pm.start(options)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            infos = pm.list()
            if len(infos) == apps and all(i.status == "online" for i in infos):
                break
            time.sleep(0.1)
        while limit and len(pm.call("memory_stats")) < apps and time.monotonic() < deadline:
            time.sleep(0.1)  # every app sampled once: the thread is in its stride
        pids = [str(i.pid) for i in pm.list()]
        print(os.getpid(), " ".join(pids), flush=True)
        sys.stdin.read()
        pm.delete("all")


def daemon_cpu(apps: int, seconds: float, limit: str | None, python: bool) -> float:
    """% of one core the daemon used over ``seconds``."""
    home = tempfile.mkdtemp(prefix="corral-measure-", dir="/tmp")
    env = {**os.environ, "CORRAL_HOME": home, "CORRAL_PLUGINS": ""}
    argv = [sys.executable, "-m", "tests.plugins.memory.measure", "_serve", str(apps)]
    argv += ["--limit", limit or "", *(["--python"] if python else [])]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    child = subprocess.Popen(argv, text=True, env=env, **pipes)
    pids: list[int] = []
    try:
        assert child.stdout is not None and child.stdin is not None
        head = child.stdout.readline().split()
        daemon, pids = psutil.Process(int(head[0])), [int(p) for p in head[1:]]
        time.sleep(2)  # let the start-up work settle before the window opens
        before, t0 = sum(daemon.cpu_times()[:2]), time.monotonic()
        time.sleep(seconds)
        after, t1 = sum(daemon.cpu_times()[:2]), time.monotonic()
        child.stdin.close()
        child.wait(60)
        return (after - before) / (t1 - t0) * 100
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
            for pid in pids:  # its apps, by pid
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
        shutil.rmtree(home, ignore_errors=True)


def one_pass(pids: list[int]) -> tuple[float, float, float]:
    """Seconds of CPU for one pass over ``pids``: the /proc reader, then two psutil ways."""
    sampler = TreeSampler()
    sampler.sample(pids)
    t0 = time.thread_time()
    for _ in range(10):
        sampler.sample(pids)
    ours = (time.thread_time() - t0) / 10
    t0 = time.thread_time()
    children: dict[int, list[int]] = {}  # one scan of the process table per pass
    for proc in psutil.process_iter(["ppid"]):
        children.setdefault(proc.info["ppid"], []).append(proc.pid)
    for pid in pids:
        tree, stack = [], [pid]
        while stack:
            tree.append(stack.pop())
            stack.extend(children.get(tree[-1], []))
        with contextlib.suppress(psutil.Error):
            sum(psutil.Process(p).memory_info().rss for p in tree)
    mapped = time.thread_time() - t0
    t0 = time.thread_time()
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
    return ours, mapped, time.thread_time() - t0


def measure_cpu(apps: int, seconds: float, python: bool) -> None:
    kind = "python sleepers" if python else "/bin/sleep"
    print(f"daemon CPU over {seconds:g} s, {apps} apps ({kind}), interval 1 s:")
    with_limit = daemon_cpu(apps, seconds, "1G", python)
    print(f"  max_memory_restart set on every app: {with_limit:.2f}% of one core")
    idle = daemon_cpu(apps, seconds, None, python)
    print(f"  no limit (plugin loaded, thread asleep): {idle:.2f}% of one core")
    print(f"  sampling cost: {with_limit - idle:.2f} points")
    procs = [subprocess.Popen(["/bin/sleep", "60"]) for _ in range(apps)]
    try:
        ours, mapped, recursive = one_pass([p.pid for p in procs])
    finally:
        for p in procs:
            p.kill()
            p.wait()
    print(f"  one pass over {apps} trees, CPU: /proc reader {ours * 1000:.2f} ms;")
    print(f"  psutil with one ppid map {mapped * 1000:.1f} ms;")
    print(f"  psutil children(recursive=True) per app {recursive * 1000:.1f} ms")


# -- latency -------------------------------------------------------------------

GROWER = """\
import random, time
time.sleep(random.uniform(0.2, 1.2))
data = b"\\x01" * (60 * 1024 * 1024)
print(f"allocated {time.time()}", flush=True)
while True:
    time.sleep(3600)
"""


class Restarts:
    def __init__(self) -> None:
        self.at: list[float] = []
        self.changed = threading.Condition()

    @corral.hookimpl
    def corral_process_event(self, event: corral.ProcessEvent) -> None:
        if event.event == "restart" and "max_memory_restart" in event.reason:
            with self.changed:
                self.at.append(event.at / 1000)
                self.changed.notify_all()


def measure_latency(runs: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="corral-measure-", dir="/tmp"))
    os.environ["CORRAL_HOME"] = str(home)
    script = home / "grower.py"
    script.write_text(GROWER)
    restarts = Restarts()
    with corral.connect(no_daemon=True, plugins=[memory, restarts]) as pm:
        (info,) = pm.start(
            {"script": str(script), "exec_interpreter": sys.executable, "max_memory_restart": "40M"}
        )
        with restarts.changed:
            restarts.changed.wait_for(lambda: len(restarts.at) >= runs, timeout=runs * 5 + 10)
        pm.stop(info.pm_id)
        lines = Path(str(pm.describe(info.pm_id)[0].out_log)).read_text().splitlines()
        pm.delete("all")
    shutil.rmtree(home, ignore_errors=True)
    allocated = [float(line.split()[1]) for line in lines if line.startswith("allocated")]
    latencies = [r - a for a, r in zip(allocated, restarts.at, strict=False)][:runs]
    print(f"allocation -> restart event, {len(latencies)} runs, interval 1 s, kill by SIGINT:")
    print(
        f"  median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s, "
        f"min {min(latencies):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = ("all", "cpu", "latency", "_serve")
    parser.add_argument("what", nargs="?", default="all", choices=choices)
    parser.add_argument("n", nargs="?", type=int, default=100)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--python", action="store_true", help="sleeping Python apps, not sleep")
    parser.add_argument("--limit", default="")
    args = parser.parse_args()
    if args.what == "_serve":
        serve(args.n, args.limit or None, args.python)
        return
    random.seed()
    if args.what in ("all", "cpu"):
        measure_cpu(args.apps, args.seconds, args.python)
    if args.what in ("all", "latency"):
        measure_latency(args.runs)


if __name__ == "__main__":
    main()
