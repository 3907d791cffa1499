"""What a container's manager costs: ``corral runtime`` beside PM2's ``pm2-runtime``.

    python bench/runtime_cost.py [--apps 4] [--runs 5] [--python PY] [--pm2 PREFIX]

Each run starts the manager as PID 1 of a new pid namespace (``unshare --pid --fork
--mount-proc``, as a container runs it; root only) on one app file of ``--apps``
apps, each ``sh -c 'echo up; exec sleep 3600'`` with no interpreter, and reads
three figures:

- **ready**: from the exec to the moment every app's ``up`` line is on the
  manager's stdout (the file is read as it grows);
- **rss**: the resident memory of every process of the namespace that is not an
  app (``sleep``), 2 s later: the manager and whatever it runs beside the apps
  (corral: its init and the manager; PM2: its runtime process and what it forks);
- **stop**: from ``docker stop``'s SIGTERM to PID 1 to the manager's exit.

PM2 is found under ``--pm2`` (an ``npm install --prefix`` of pm2; installed there
when missing). Medians of ``--runs`` runs, and corral / PM2 ratios. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

APP = {"script": "/bin/sh", "args": ["-c", "echo up; exec sleep 3600"], "interpreter": "none"}


def app_file(folder: Path, apps: int) -> Path:
    path = folder / "apps.json"
    apps_list = [{"name": f"app{n}", **APP} for n in range(apps)]
    path.write_text(json.dumps({"apps": apps_list}))
    return path


def pm2_bin(prefix: Path) -> Path:
    runtime = prefix / "bin" / "pm2-runtime"
    if not runtime.exists():
        subprocess.run(["npm", "install", "--prefix", str(prefix), "pm2"], check=True)
    return runtime


def one_run(command: list[str], env: dict[str, str], apps: int, folder: Path) -> dict[str, float]:
    out_path = folder / "stdout"
    with open(out_path, "wb") as out:
        began = time.monotonic()
        unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", *command],
            stdout=out,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=folder,
        )
    try:
        while out_path.read_bytes().count(b"up\n") < apps:
            if time.monotonic() - began > 60:
                raise SystemExit(f"{command[0]}: the apps did not all start in 60 s")
            time.sleep(0.002)
        ready = time.monotonic() - began
        time.sleep(2)
        init = psutil.Process(unshare.pid).children()[0]
        managers = [init, *init.children(recursive=True)]
        rss = sum(p.memory_info().rss for p in managers if p.name() not in ("sleep", "sh"))
        began = time.monotonic()
        init.send_signal(signal.SIGTERM)
        unshare.wait(60)
        stop = time.monotonic() - began
    finally:
        if unshare.poll() is None:
            unshare.kill()
            unshare.wait()
    return {"ready_s": ready, "rss_mib": rss / 2**20, "stop_s": stop}


def measure(name: str, command: list[str], env: dict, apps: int, runs: int) -> dict[str, float]:
    figures = []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix=f"rtbench-{name}-"))
        try:
            run_env = {**env, "CORRAL_HOME": str(folder / "home"), "PM2_HOME": str(folder / "pm2")}
            figures.append(one_run([*command, str(app_file(folder, apps))], run_env, apps, folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return {key: statistics.median(f[key] for f in figures) for key in figures[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pm2", default="/tmp/pm2p")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("a pid namespace needs root")
    env = dict(os.environ)
    corral = measure("corral", [args.python, "-m", "corral", "runtime"], env, args.apps, args.runs)
    pm2 = measure("pm2", [str(pm2_bin(Path(args.pm2)))], env, args.apps, args.runs)
    print(f"{'':8} {'corral':>10} {'pm2':>10} {'ratio':>7}   ({args.apps} apps, {args.runs} runs)")
    for key in corral:
        print(f"{key:8} {corral[key]:10.3f} {pm2[key]:10.3f} {corral[key] / pm2[key]:7.2f}")


if __name__ == "__main__":
    main()
