"""What health checks cost the daemon; how fast a failing check or a missed watchdog beat
restarts an app.

    python bench/health_cost.py [--apps 100] [--seconds 20] [--runs 3] [--kills 10]
                                [--python PY]

Each run starts a fresh corral daemon (plugins ``bus,health``) with ``--apps``
apps (``sleep 3600``, ``"interpreter": "none"``) once for every kind: no check
(the baseline), an ``http`` check, a ``tcp`` check and an ``exec`` check
(``true``), each every 1 s with the defaults otherwise. The http and tcp checks
all reach one small HTTP server of this script's (its CPU is not the daemon's).
Once every app is online and 3 s have passed, the daemon's CPU time (utime + stime
of ``/proc/PID/stat``, all its threads) is read, again ``--seconds`` later, and
the difference over the wall time is the figure, as a % of one core. An exec check
is a process each time: its figure adds the CPU of the daemon's reaped children
(``cutime + cstime``), and is shown apart.

Then the time from a failing check to the restart: one app whose http check
(every 100 ms, ``failure_threshold`` 1) this script's server starts failing, the
clock running from that moment to the first moment a new child of the daemon
runs; ``--kills`` times a run. And the time from a missed watchdog beat to the
restart: a Python app with ``watchdog: 300ms`` beats six times (``corral.child.
heartbeat()``, every 50 ms) and writes when it last did; the clock runs from that
beat + 300 ms (the deadline) to a new child running. corral is the only tool
here (the watchdog's daemon loads ``bus,watchdog``): PM2, supervisor and circus
have no health check or watchdog to compare with. Asserts nothing; the issue's
goal (under 3% of one core for 100 http or tcp checks a second) is for the reader.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from metrics import require_daemon, shutdown, wait_online, write_ecosystem
from tools import Corral, exit_on_term, log, tear_down

TICKS = os.sysconf("SC_CLK_TCK")
SETTLE = 3.0
KINDS = ("none", "http", "tcp", "exec")


class Target:
    """The HTTP server every check reaches: 200, or 500 for a path in ``sick``."""

    def __init__(self) -> None:
        sick = self.sick = set()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                self.send_response(500 if self.path in sick else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            # checks of one interval come together (the plugin puts them on one grid):
            # the default backlog of 5 would drop most of 100 at once
            request_queue_size = 1024

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def check_of(kind: str, port: int, path: str = "/") -> dict[str, Any] | None:
    if kind == "http":
        return {"http": f"http://127.0.0.1:{port}{path}", "interval": "1s"}
    if kind == "tcp":
        return {"tcp": f"127.0.0.1:{port}", "interval": "1s"}
    if kind == "exec":
        return {"exec": ["true"], "interval": "1s"}
    return None


def apps_of(count: int, kind: str, port: int) -> list[dict[str, Any]]:
    apps = []
    for i in range(count):
        app: dict[str, Any] = {
            "name": f"h{i:03d}",
            "script": "/bin/sleep",
            "args": ["3600"],
            "interpreter": "none",
        }
        check = check_of(kind, port)
        if check is not None:
            app["health"] = check
        apps.append(app)
    return apps


def cpu_ticks(pid: int, children: bool) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])  # utime, stime
    return own + (int(fields[13]) + int(fields[14]) if children else 0)  # cutime, cstime


def cost_once(tool: Corral, kind: str, apps: int, seconds: float, port: int) -> float:
    """The daemon's CPU over ``seconds`` with ``apps`` apps checked by ``kind``, % of a core."""
    home = tool.new_home(features=("health",))
    try:
        tool.start_file(write_ecosystem(home / "apps.json", apps_of(apps, kind, port)))
        wait_online(tool, apps, timeout=120)
        daemon = require_daemon(tool)
        time.sleep(SETTLE)
        children = kind == "exec"
        t0, c0 = time.monotonic(), cpu_ticks(daemon.pid, children)
        time.sleep(seconds)
        t1, c1 = time.monotonic(), cpu_ticks(daemon.pid, children)
        restarts = sum(p["pm2_env"].get("restart_time", 0) for p in tool.jlist())
        if restarts:  # a check that failed: the figure would count restarts, not checks
            raise SystemExit(f"{kind}: {restarts} restarts during the window; see corral.log")
        return (c1 - c0) / TICKS / (t1 - t0) * 100
    finally:
        shutdown(tool)


def restart_latency(tool: Corral, target: Target, kills: int) -> list[float]:
    """ms from the check's endpoint failing to a new child of the daemon running."""
    home = tool.new_home(features=("health",))
    path = f"/sick-{uuid.uuid4().hex[:8]}"
    app = apps_of(1, "none", target.port)[0]
    app["health"] = {
        "http": f"http://127.0.0.1:{target.port}{path}",
        "interval": 100,
        "timeout": 100,
        "failure_threshold": 1,
    }
    app["min_uptime"] = 100  # each run is up 0.5 s before it fails: a stable one, no backoff
    samples = []
    try:
        tool.start_file(write_ecosystem(home / "one.json", [app]))
        (first,) = wait_online(tool, 1)
        daemon = require_daemon(tool)
        pid = first["pid"]
        for _ in range(kills):
            pid = _healthy(tool, pid)  # the current child passed a check: sick from now
            target.sick.add(path)
            t0 = time.monotonic()
            new = _new_pid(daemon, pid, t0)
            samples.append((time.monotonic() - t0) * 1000)
            target.sick.discard(path)
            pid = new
    finally:
        target.sick.discard(path)
        shutdown(tool)
    return samples


# Beats every 50 ms for 0.3 s, writes the monotonic ns of its last beat to argv[1], hangs.
BEATER = """\
import sys, time
import corral.child as child
for _ in range(6):
    child.heartbeat()
    last = time.monotonic_ns()
    time.sleep(0.05)
with open(sys.argv[1], "w") as f:
    f.write(str(last))
time.sleep(3600)
"""


def watchdog_latency(tool: Corral, kills: int) -> list[float]:
    """ms from a child's watchdog deadline (its last beat + the timeout) to a new child
    of the daemon running; the timeout is 300 ms."""
    home = tool.new_home(features=("watchdog",))
    script = home / "beater.py"
    script.write_text(BEATER)
    last = home / "last-beat"
    app = {
        "name": "beater",
        "script": str(script),
        "interpreter": tool.python,
        "args": [str(last)],
        "watchdog": 300,
        "min_uptime": 100,
    }
    samples = []
    try:
        tool.start_file(write_ecosystem(home / "beat.json", [app]))
        (first,) = wait_online(tool, 1)
        daemon = require_daemon(tool)
        pid = first["pid"]
        for _ in range(kills):
            deadline = time.monotonic() + 10
            while not last.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            due = (int(last.read_text()) / 1e9) + 0.3
            last.unlink()
            pid = _new_pid(daemon, pid, time.monotonic(), name="python")
            samples.append((time.monotonic() - due) * 1000)
    finally:
        shutdown(tool)
    return samples


def _healthy(tool: Corral, pid: int) -> int:
    """Wait until the app's current child, whichever it is, shows healthy; its pid."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (app,) = tool.jlist()
        health = app["pm2_env"].get("health_status") or {}
        up = time.time() * 1000 - (app["pm2_env"].get("pm_uptime") or time.time() * 1000)
        healthy = health.get("status") == "healthy" and health.get("checked_at")
        if app["pid"] and healthy and up >= 500:  # up past min_uptime: a stable run ends
            return int(app["pid"])
        time.sleep(0.02)
    raise SystemExit(f"the app (pid {pid}) was not healthy within 10 s")


def _new_pid(daemon: psutil.Process, old: int, t0: float, name: str = "sleep") -> int:
    while time.monotonic() - t0 < 10:
        for child in daemon.children(recursive=True):
            try:
                if child.pid != old and child.name().startswith(name):
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(0.002)
    raise SystemExit("no new child 10 s after the check began to fail")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--python", default=sys.executable, help="the Python of corral")
    parser.add_argument("--json", type=Path, help="write every sample here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_term)
    root = Path(tempfile.mkdtemp(prefix="corral-health-bench-"))
    token = uuid.uuid4().hex
    tool = Corral(root, token, args.python)
    target = Target()
    costs: dict[str, list[float]] = {kind: [] for kind in KINDS}
    latencies: list[float] = []
    beats: list[float] = []
    try:
        for run in range(args.runs):
            for kind in KINDS:
                log(f"run {run + 1}/{args.runs}: {args.apps} apps, {kind} checks")
                costs[kind].append(cost_once(tool, kind, args.apps, args.seconds, target.port))
            log(f"run {run + 1}/{args.runs}: restart after a failing check")
            latencies += restart_latency(tool, target, args.kills)
            log(f"run {run + 1}/{args.runs}: restart after a missed watchdog beat")
            beats += watchdog_latency(tool, args.kills)
    finally:
        target.close()
        tear_down([tool], token, root)
    base = statistics.median(costs["none"])
    print(f"# Health checks: {args.apps} apps, one check each every 1 s, {args.runs} runs\n")
    print("| checks | daemon CPU, % of one core (median, min-max) | over no check |")
    print("| --- | --- | --- |")
    for kind in KINDS:
        values = costs[kind]
        label = "exec (daemon + its check processes)" if kind == "exec" else kind
        median = statistics.median(values)
        extra = "" if kind == "none" else f"{median - base:+.2f}"
        print(f"| {label} | {median:.2f} ({min(values):.2f}-{max(values):.2f}) | {extra} |")
    print(
        f"\nFailing http check (every 100 ms, failure_threshold 1) -> new child running, "
        f"{len(latencies)} kills: median {statistics.median(latencies):.0f} ms, "
        f"min {min(latencies):.0f}, max {max(latencies):.0f}"
    )
    print(
        f"Watchdog deadline (last beat + 300 ms) -> new child running, {len(beats)} kills: "
        f"median {statistics.median(beats):.0f} ms, min {min(beats):.0f}, max {max(beats):.0f}"
    )
    if args.json:
        samples = {"costs": costs, "restart_ms": latencies, "watchdog_ms": beats}
        args.json.write_text(json.dumps(samples, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
