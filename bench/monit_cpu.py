"""What ``corral monit`` costs: its CPU time, as a % of one core, watching 200 apps.

    python bench/monit_cpu.py [--apps 200] [--seconds 20] [--python PY]

A detached daemon on a fresh CORRAL_HOME starts ``--apps`` apps (``sh`` exec'ing
``sleep 3600``), then ``corral monit`` runs in a tmux window (120x50, a private
tmux server) with the list refreshed every second. Once its first frame is on
screen, its CPU time (utime + stime of /proc/PID/stat, the monit process alone)
is read, again ``--seconds`` later, and the difference over the wall time is
printed as a % of one core, with the daemon's over the same window beside it
(monit's list call every second is work for the daemon too). The target of
issue 13 is under 5%. Asserts nothing; exits 1 only when a step fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait(check, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            sys.exit(f"monit_cpu: {what} not seen within {timeout:g} s")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--python", default=sys.executable, help="the Python of corral")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="monitcpu-", dir="/tmp"))
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_PLUGINS": ""}
    env.pop("LINES", None)
    env.pop("COLUMNS", None)
    corral = [args.python, "-m", "corral"]
    socket = f"corral-monit-cpu-{os.getpid()}"
    tmux = ["tmux", "-L", socket]
    apps = [
        {"name": f"s{n:03d}", "script": "/bin/sh", "args": ["-c", "exec sleep 3600"]}
        for n in range(args.apps)
    ]
    (home / "apps.json").write_text(json.dumps({"apps": apps}))
    try:
        subprocess.run([*corral, "start", str(home / "apps.json")], env=env, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        daemon = int((home / "corral.pid").read_text().split()[0])
        command = " ".join([*corral, "monit"])
        window = f"env CORRAL_HOME={home} CORRAL_PLUGINS= {command}"
        subprocess.run([*tmux, "new-session", "-d", "-s", "m", "-x", "120", "-y", "50", window],
                       env=env, check=True)  # fmt: skip
        pid = int(
            subprocess.run([*tmux, "list-panes", "-t", "m", "-F", "#{pane_pid}"],
                           capture_output=True, text=True, check=True).stdout.split()[0]
        )  # fmt: skip

        def screen() -> str:
            return subprocess.run([*tmux, "capture-pane", "-p", "-t", "m"],
                                  capture_output=True, text=True).stdout  # fmt: skip

        wait(lambda: "corral monit" in screen(), "monit's first frame")
        start, monit0, daemon0 = time.monotonic(), cpu_seconds(pid), cpu_seconds(daemon)
        time.sleep(args.seconds)  # the window measured: monit left alone, as a user watching
        wall = time.monotonic() - start
        monit_pct = 100 * (cpu_seconds(pid) - monit0) / wall
        daemon_pct = 100 * (cpu_seconds(daemon) - daemon0) / wall
        print(f"monit, {args.apps} apps, {wall:.1f} s: {monit_pct:.2f}% of one core "
              f"(daemon meanwhile {daemon_pct:.2f}%)")  # fmt: skip
    finally:
        where = subprocess.run([*tmux, "display-message", "-p", "#{socket_path}"],
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        if where:
            Path(where).unlink(missing_ok=True)  # tmux 3.3 leaves its socket behind
        subprocess.run([*corral, "kill"], env=env, capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
