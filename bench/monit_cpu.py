"""What ``corral monit`` costs beside ``pm2 monit``: CPU, as a % of one core, watching 200 apps.

    python bench/monit_cpu.py [--apps 200] [--seconds 20] [--runs 3] [--python PY]
                              [--pm2-prefix DIR] [--no-logs]

Each run gives each tool (corral, then PM2, the order rotating by one every run)
a fresh home and daemon with ``--apps`` apps (``sh`` exec'ing ``sleep 3600``,
``"interpreter": "none"``), all online, then a settle. Then the tool's watching
command runs in a tmux window of 120x50 (a private tmux server):
``corral monit`` / ``pm2 monit``, then ``corral logs`` / ``pm2 logs`` (follow,
all apps). Once its screen shows it working (``s000``, the first app, for monit;
``TAILING`` for logs) and 2 s of grace have passed, the CPU time of that
process (utime + stime of /proc/PID/stat, the process alone) and of the daemon
(corral's daemon, PM2's "God") are read, again ``--seconds`` later, and the
differences over the wall time are its figures, as a % of one core. The table
gives the median (min-max) of the runs and the corral/PM2 ratio of the medians.
The target of issue 13 is under 5% for corral's monit. Asserts nothing; exits 1
only when a step fails. Every process started is stopped by pid at the end, even
after an error or SIGTERM (``kill`` through each CLI, then the run's token sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from metrics import require_daemon, wait_online
from tools import (
    PM2,
    TOKEN_VAR,
    BenchError,
    Corral,
    Tool,
    alive,
    exit_on_term,
    install_pm2,
    log,
    tear_down,
)

TICKS = os.sysconf("SC_CLK_TCK")
WIDTH, HEIGHT = 120, 50
GRACE = 2.0  # s between the command's first working screen and the window measured
SETTLE = 3.0  # s between "all apps online" and the first command
# what each tool's command is called with, and what on its screen says it is working
COMMANDS = {"monit": (("monit",), "s000"), "logs": (("logs",), "TAILING")}


class BareCorral(Corral):
    """corral with no plugin (PM2 runs with no module), unless CORRAL_PLUGINS says."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["CORRAL_PLUGINS"] = os.environ.get("CORRAL_PLUGINS", "")
        return env


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/PID/stat), every
    thread of the process included, exited ones too."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not seen within {timeout:g} s")
        time.sleep(0.05)


class Tmux:
    """A private tmux server (its own socket) holding one window; closed by ``close``."""

    def __init__(self, name: str) -> None:
        self.argv = ["tmux", "-L", name]
        self.pid: int | None = None

    def open(self, command: str, env: dict[str, str]) -> int:
        """Start ``command`` in a WIDTH x HEIGHT window; the pid of its process."""
        subprocess.run(
            [*self.argv, "new-session", "-d", "-s", "w", "-x", str(WIDTH), "-y", str(HEIGHT),
             command], env=env, check=True, capture_output=True,
        )  # fmt: skip
        out = self._run("list-panes", "-t", "w", "-F", "#{pane_pid}")
        self.pid = int(out.split()[0])
        return self.pid

    def screen(self) -> str:
        return self._run("capture-pane", "-p", "-t", "w")

    def close(self) -> None:
        """Kill the server and the window's process (by pid, should it outlive the server)."""
        proc = None
        if self.pid is not None:
            try:
                proc = psutil.Process(self.pid)
            except psutil.Error:
                pass
        where = self._run("display-message", "-p", "#{socket_path}").strip()
        subprocess.run([*self.argv, "kill-server"], capture_output=True)
        if where:
            Path(where).unlink(missing_ok=True)  # tmux 3.3 leaves its socket behind
        deadline = time.monotonic() + 5
        while proc is not None and alive(proc):  # SIGHUP'd by the server's exit
            if time.monotonic() > deadline:
                proc.kill()  # psutil refuses if the pid was reused
                break
            time.sleep(0.05)
        self.pid = None

    def _run(self, *args: str) -> str:
        return subprocess.run([*self.argv, *args], capture_output=True, text=True).stdout


def watch(tool: Tool, kind: str, seconds: float, tmux: Tmux) -> tuple[float, float]:
    """Run the tool's ``kind`` command in a tmux window: its CPU % and the daemon's meanwhile."""
    args, marker = COMMANDS[kind]
    daemon = require_daemon(tool).pid
    env = tool.env()
    exported = [f"{k}={env[k]}" for k in (tool.home_var, "CORRAL_PLUGINS", TOKEN_VAR) if k in env]
    # env exec's the command (and PM2's `#!/usr/bin/env node` exec's node): the pane's
    # pid is the command's process for the whole window
    command = shlex.join(["env", *exported, *tool.cli(), *args])
    try:
        pid = tmux.open(command, env)
        wait(lambda: marker in tmux.screen(), f"{tool.label} {kind}: {marker!r} on screen")
        time.sleep(GRACE)
        start, own0, daemon0 = time.monotonic(), cpu_seconds(pid), cpu_seconds(daemon)
        time.sleep(seconds)  # the window measured: left alone, as a user watching
        own1, daemon1 = cpu_seconds(pid), cpu_seconds(daemon)
        wall = time.monotonic() - start
        if not alive(psutil.Process(pid)):
            raise BenchError(f"{tool.label} {kind} exited during the window")
        return 100 * (own1 - own0) / wall, 100 * (daemon1 - daemon0) / wall
    except (OSError, subprocess.CalledProcessError, psutil.Error) as exc:
        raise BenchError(f"{tool.label} {kind}: {exc}") from exc
    finally:
        tmux.close()


def session(tool: Tool, apps: int, kinds: list[str], seconds: float, tmux: Tmux) -> dict:
    """One fresh home and daemon with ``apps`` apps: figures of each watching command."""
    home = tool.new_home()
    path = home.parent / f"{tool.label}-apps.json"
    entries = [
        {"name": f"s{n:03d}", "script": "/bin/sh", "args": ["-c", "exec sleep 3600"],
         "interpreter": "none"}
        for n in range(apps)
    ]  # fmt: skip
    path.write_text(json.dumps({"apps": entries}))
    figures = {}
    try:
        tool.start_file(path)
        wait_online(tool, apps, timeout=300)
        time.sleep(SETTLE)
        for kind in kinds:
            figures[kind] = watch(tool, kind, seconds, tmux)
            log(f"{tool.label} {kind}: {figures[kind][0]:.2f}% (daemon {figures[kind][1]:.2f}%)")
    finally:
        problem = tool.shutdown()  # `kill` through the CLI, then any survivor by pid
        if problem:
            log(f"warning: {problem}")
    return figures


def render(samples: dict, kinds: list[str], header: str) -> str:
    """The markdown table: median (min-max) per tool, and corral/PM2 of the medians."""
    lines = [
        header,
        "",
        "| % of one core | corral | PM2 | corral/PM2 |",
        "| --- | --- | --- | --- |",
    ]
    for kind in kinds:
        for index, what in ((0, f"`{kind}` process"), (1, f"daemon during `{kind}`")):
            cells, medians = [], []
            for label in ("corral", "pm2"):
                values = [run[kind][index] for run in samples[label]]
                if not values:
                    cells.append("-")
                    medians.append(None)
                    continue
                medians.append(statistics.median(values))
                cells.append(f"{medians[-1]:.2f} ({min(values):.2f}-{max(values):.2f})")
            ratio = "-"
            if None not in medians and medians[1]:
                ratio = f"{medians[0] / medians[1]:.2f}"
            lines.append(f"| {what} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0, help="the window measured")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--python", default=sys.executable, help="the Python of corral")
    parser.add_argument(
        "--pm2-prefix", type=Path, help="an npm prefix with PM2 (installed there if missing)"
    )
    parser.add_argument("--no-logs", action="store_true", help="measure monit only")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, exit_on_term)
    root = Path(tempfile.mkdtemp(prefix="monitcpu-", dir="/tmp"))
    token = uuid.uuid4().hex
    kinds = ["monit"] if args.no_logs else ["monit", "logs"]
    tmux = Tmux(f"corral-monit-cpu-{os.getpid()}")
    tools: list[Tool] = []
    samples: dict[str, list[dict]] = {"corral": [], "pm2": []}
    failed = None
    try:
        prefix = install_pm2(args.pm2_prefix or root / "pm2")
        tools = [BareCorral(root, token, args.python), PM2(prefix, root, token, args.python)]
        versions = f"corral {tools[0].version()}, PM2 {tools[1].version()}"
        log(f"{versions}; {args.runs} runs of {args.seconds:g} s, {args.apps} apps, in {root}")
        for run in range(args.runs):
            for tool in tools[run % 2 :] + tools[: run % 2]:
                samples[tool.label].append(session(tool, args.apps, kinds, args.seconds, tmux))
    except BenchError as exc:
        failed = str(exc)
    finally:
        tmux.close()
        tear_down(tools, token, root)
    if failed:
        print(f"monit_cpu: {failed}", file=sys.stderr)
        return 1
    header = (
        f"{versions}; {args.apps} apps, {WIDTH}x{HEIGHT} tmux windows, "
        f"{args.seconds:g} s windows, median (min-max) of {args.runs} runs"
    )
    print(render(samples, kinds, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
