"""What a cgroup per child costs a spawn (corral.supervisor.cgroup_home), measured two ways.

    python bench/cgroup_cost.py [--kills 60] [--spawns 80]

1. ``born_in`` around a Popen of /bin/true, 50 ms apart (so every cgroup move is
   "cold", the case that waits for an RCU grace period): the time the caller
   (the daemon's loop) spends entering and leaving, beside the Popen itself.
2. restart after SIGKILL with ``CORRAL_CGROUPS=0`` and ``=1``: a detached daemon,
   a sleeping app SIGKILLed every 50 ms, the time until a new child of the
   daemon runs the script (as bench/metrics.py ``restart_after_sigkill``).

Needs a writable cgroup v2 hierarchy (root). Prints medians; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corral.supervisor import cgroup_home

HERE = Path(__file__).resolve().parent

_RESTART = """\
import os, signal, statistics, sys, tempfile, time
sys.path.insert(0, {here!r})
import psutil
from metrics import new_child
import corral

home = tempfile.mkdtemp(prefix="cgcost-", dir="/tmp")
os.environ.update(CORRAL_HOME=home, CORRAL_PLUGINS="")
script = os.path.join(home, "victim.py")
open(script, "w").write("import time\\nwhile True:\\n    time.sleep(3600)\\n")
client = corral.connect()
try:
    info = client.start(script, {{"name": "victim", "max_restarts": 100000}})[0]
    daemon, pid, times = psutil.Process(client.daemon_pid), info.pid, []
    for _ in range({kills}):
        time.sleep(0.05)
        before = set(psutil.pids())
        t0 = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        pid, t1 = new_child(daemon, before, "victim.py", t0)
        times.append((t1 - t0) * 1000)
    print(statistics.median(times))
finally:
    client.kill_daemon()
"""


def on_the_loop(spawns: int) -> None:
    cgroups = cgroup_home.Cgroups.open(Path(tempfile.mkdtemp(prefix="cgcost-", dir="/tmp")))
    if cgroups is None:
        raise SystemExit("no writable cgroup v2 hierarchy here")
    enter, leave, popen = [], [], []
    try:
        for _ in range(spawns):
            time.sleep(0.05)
            t0 = time.perf_counter()
            birth = cgroups.born_in("bench")
            birth.__enter__()
            t1 = time.perf_counter()
            child = subprocess.Popen(["/bin/true"], start_new_session=True)
            t2 = time.perf_counter()
            birth.__exit__(None, None, None)
            t3 = time.perf_counter()
            child.wait()
            cgroups.prune("bench")
            enter.append(t1 - t0)
            popen.append(t2 - t1)
            leave.append(t3 - t2)
    finally:
        cgroups.close()
    for name, values in (("enter", enter), ("Popen", popen), ("leave", leave)):
        print(f"born_in {name:5s}: median {statistics.median(values) * 1000:.3f} ms")


def restarts(kills: int) -> None:
    code = _RESTART.format(here=str(HERE), kills=kills)
    for setting in ("0", "1", "0", "1"):
        env = dict(os.environ, CORRAL_CGROUPS=setting)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        figure = out.stdout.strip() or out.stderr.strip().splitlines()[-1]
        print(f"restart after SIGKILL, CORRAL_CGROUPS={setting}: median {float(figure):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--spawns", type=int, default=80)
    args = parser.parse_args()
    on_the_loop(args.spawns)
    restarts(args.kills)


if __name__ == "__main__":
    main()
