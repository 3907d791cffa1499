"""What the web dashboard costs the daemon, and how fast and smooth its page is, with
100 apps open in one browser tab.

    python bench/web_cost.py [--apps 100] [--seconds 20] [--runs 3] [--stops 10]
                             [--python PY]

Each run starts a fresh corral daemon (plugins ``bus,web``) with ``--apps`` apps
(``sleep 3600``, ``"interpreter": "none"``) and, once every app is online and 3 s
have passed, measures three windows of ``--seconds`` each:

1. no dashboard (the baseline);
2. ``corral web start``: the dashboard's process samples the list (``jlist``) every
   second and follows the bus, with no browser;
3. the same with one headless Chromium tab (Debian's chromium and chromedriver,
   under Selenium) logged in on the list page, its event stream pushing the
   list every second.

The daemon's CPU in a window is the difference of utime + stime of
``/proc/PID/stat`` (all its threads) over the wall time, as a % of one core; the
dashboard's own process and the browser's processes (chromium's whole tree) are
measured the same way, apart. The figure of the issue ("under 2% of one core to the
daemon at 1 s updates") is window 3 minus window 1.

Then, in the same tab: how responsive the page is. A filter keystroke: the time from
the ``input`` event to the next frame painted (``performance.now()`` in the page,
until a task queued from the frame's ``requestAnimationFrame`` runs), over 20
keystrokes. A list update: the time
``showList`` takes to redraw the 100 rows on each pushed list, over the window, and
the long tasks (over 50 ms) the page had. And the latency from ``corral stop NAME``
on the CLI to the row of NAME showing ``stopped`` in the tab (the page stamps the
first redraw that shows it, ``performance.timeOrigin + now()``, against the bench's
``time.time()`` before the CLI ran), ``--stops`` times a run, each a different app;
the CLI's own time until it returned is shown beside it. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from metrics import require_daemon, shutdown, wait_online, write_ecosystem
from tools import BenchError, Corral, exit_on_term, log, tear_down

TICKS = os.sysconf("SC_CLK_TCK")
SETTLE = 3.0
WINDOWS = ("no dashboard", "dashboard, no tab", "dashboard + one tab")

# wraps the page's showList (a global function of corral.js): each redraw's duration,
# and the moment a watched app first shows as stopped
INSTRUMENT = """
window.bench = {renders: [], longTasks: [], watch: null, seenAt: null};
const showList0 = window.showList;
window.showList = function () {
  const t0 = performance.now();
  showList0();
  const t1 = performance.now();
  window.bench.renders.push(t1 - t0);
  const b = window.bench;
  if (b.watch && b.seenAt === null) {
    const tr = document.querySelector(`#procs tbody tr[data-name="${b.watch}"]`);
    if (tr && tr.dataset.status === "stopped") b.seenAt = performance.timeOrigin + t1;
  }
};
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.bench.longTasks.push(entry.duration);
}).observe({entryTypes: ["longtask"]});
"""

# one filter keystroke: [input event -> its handler done, -> the next frame painted], ms
KEYSTROKE = """
const done = arguments[arguments.length - 1];
const filter = document.getElementById("filter");
const t0 = performance.now();
filter.value = arguments[0];
filter.dispatchEvent(new Event("input"));
const t1 = performance.now();
requestAnimationFrame(() => setTimeout(() => done([t1 - t0, performance.now() - t0]), 0));
"""


def apps_of(count: int) -> list[dict[str, Any]]:
    return [
        {"name": f"w{i:03d}", "script": "/bin/sleep", "args": ["3600"], "interpreter": "none"}
        for i in range(count)
    ]


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone: its ticks are lost, it is no longer counted
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def tree(pid: int | None) -> list[int]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root.pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.Error:
        return []


def window(groups: dict[str, Any], seconds: float) -> dict[str, float]:
    """% of one core of each group of pids (a callable giving them) over ``seconds``."""
    pids = {name: pick() for name, pick in groups.items()}
    t0, c0 = time.monotonic(), {name: cpu_ticks(p) for name, p in pids.items()}
    time.sleep(seconds)
    t1, c1 = time.monotonic(), {name: cpu_ticks(p) for name, p in pids.items()}
    return {name: (c1[name] - c0[name]) / TICKS / (t1 - t0) * 100 for name in pids}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def browser() -> Any:
    """Headless Chromium under Selenium, Debian's binaries (nothing is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--window-size=1280,900"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(driver))


def wait(predicate: Any, what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise BenchError(f"{what}: not within {timeout:g} s")


def one_run(tool: Corral, args: argparse.Namespace) -> dict[str, Any]:
    home = tool.new_home(features=("web",))
    driver = None
    try:
        tool.start_file(write_ecosystem(home / "apps.json", apps_of(args.apps)))
        wait_online(tool, args.apps, timeout=120)
        daemon = require_daemon(tool)
        time.sleep(SETTLE)
        cpu: dict[str, dict[str, float]] = {}
        cpu[WINDOWS[0]] = window({"daemon": lambda: [daemon.pid]}, args.seconds)

        port = free_port()
        url = tool.run("web", "start", "--port", str(port)).strip().splitlines()[-1]
        web_pid = next(p["pid"] for p in tool.jlist() if p["name"] == "corral-web")
        time.sleep(SETTLE)
        groups = {"daemon": lambda: [daemon.pid], "web": lambda: [web_pid]}
        cpu[WINDOWS[1]] = window(groups, args.seconds)

        driver = browser()
        driver.get(url)
        rows = "return document.querySelectorAll('#procs tbody tr').length"
        wait(lambda: driver.execute_script(rows) == args.apps + 1, "every row in the tab")
        driver.execute_script(INSTRUMENT)
        time.sleep(SETTLE)
        driver.execute_script("window.bench.renders = []; window.bench.longTasks = []")
        chromium = driver.service.process.pid
        groups["browser"] = lambda: tree(chromium)[1:]  # chromedriver left out
        cpu[WINDOWS[2]] = window(groups, args.seconds)
        renders = driver.execute_script("return window.bench.renders")
        long_tasks = driver.execute_script("return window.bench.longTasks")

        keystrokes = []
        for i in range(20):
            text = "w0" if i % 2 == 0 else ""
            keystrokes.append(driver.execute_async_script(KEYSTROKE, text))
        driver.execute_async_script(KEYSTROKE, "")

        stops, cli = [], []
        for i in range(args.stops):
            name = f"w{args.apps - 1 - i:03d}"
            driver.execute_script(f"window.bench.watch = '{name}'; window.bench.seenAt = null")
            t0 = time.time()
            tool.run("stop", name)
            cli.append((time.time() - t0) * 1000)
            seen = wait(lambda: driver.execute_script("return window.bench.seenAt"), name, 10)
            stops.append(seen - t0 * 1000)
        return {"cpu": cpu, "renders": renders, "long_tasks": long_tasks,
                "keystrokes": keystrokes, "stop_ms": stops, "cli_ms": cli}  # fmt: skip
    finally:
        if driver is not None:
            driver.quit()
        shutdown(tool)


def summary(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (f"median {statistics.median(values):.1f}, p95 {p95:.1f}, "
            f"max {max(values):.1f} ({len(values)} samples)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stops", type=int, default=10)
    parser.add_argument("--python", default=sys.executable, help="the Python of corral")
    parser.add_argument("--json", type=Path, help="write every sample here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_term)
    root = Path(tempfile.mkdtemp(prefix="corral-web-bench-"))
    token = uuid.uuid4().hex
    tool = Corral(root, token, args.python)
    runs = []
    try:
        for run in range(args.runs):
            log(f"run {run + 1}/{args.runs}: {args.apps} apps, {len(WINDOWS)} windows "
                f"of {args.seconds:g} s, {args.stops} stops")  # fmt: skip
            runs.append(one_run(tool, args))
    finally:
        tear_down([tool], token, root)

    def figures(window_name: str, group: str) -> list[float]:
        return [r["cpu"][window_name][group] for r in runs if group in r["cpu"][window_name]]

    print(f"# The web dashboard: {args.apps} apps, list pushed every 1 s, {args.runs} runs\n")
    print("| window | daemon, % of one core | over no dashboard | dashboard process | browser |")
    print("| --- | --- | --- | --- | --- |")
    base = statistics.median(figures(WINDOWS[0], "daemon"))
    for name in WINDOWS:
        daemon = figures(name, "daemon")
        med = statistics.median(daemon)
        extra = "" if name == WINDOWS[0] else f"{med - base:+.2f}"
        web = figures(name, "web")
        tab = figures(name, "browser")
        print(f"| {name} | {med:.2f} ({min(daemon):.2f}-{max(daemon):.2f}) | {extra} | "
              f"{f'{statistics.median(web):.2f}' if web else '-'} | "
              f"{f'{statistics.median(tab):.2f}' if tab else '-'} |")  # fmt: skip
    renders = [v for r in runs for v in r["renders"]]
    keys = [v[1] for r in runs for v in r["keystrokes"]]
    redraws = [v[0] for r in runs for v in r["keystrokes"]]
    longs = [v for r in runs for v in r["long_tasks"]]
    stops = [v for r in runs for v in r["stop_ms"]]
    cli = [v for r in runs for v in r["cli_ms"]]
    print(f"\nList redraw on each pushed update ({args.apps + 1} rows), ms: {summary(renders)}")
    print(f"Filter keystroke to the next frame painted, ms: {summary(keys)}")
    print(f"  of which the filtered redraw itself (the input handler), ms: {summary(redraws)}")
    print(f"Long tasks (> 50 ms) during the {args.seconds:g} s windows with a tab: {len(longs)}"
          + (f" (longest {max(longs):.0f} ms)" if longs else ""))  # fmt: skip
    print(f"`corral stop NAME` -> its row shows stopped in the tab, ms: {summary(stops)}")
    print(f"  of which the CLI itself, until it returned, ms: {summary(cli)}")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
