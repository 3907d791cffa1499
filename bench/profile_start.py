"""Where a start of N apps spends the daemon's CPU: cProfile with a CPU clock, per phase.

    python bench/profile_start.py 1000            # the corral that `python` imports
    python bench/profile_start.py 1000 --python /tmp/other-venv/bin/python

Starts a daemon under cProfile (``time.process_time``: CPU, not wall time, so the
figures move less with the machine's load) on a fresh home, starts N ``sh`` apps
that ``exec sleep`` from one file, kills the daemon, and prints the CPU ms per app
spent under each phase (cumulative, profiler overhead included: compare two
corrals with the same script, not with the bench's figures).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHASES = [
    ("the whole daemon", "kernel.py", "main"),
    ("start command", "launch.py", "cmd_start"),
    ("prepare (options)", "creation.py", "prepare"),
    ("create (register, open logs)", "creation.py", "create_all"),
    ("launch (every spawn)", "creation.py", "launch_all"),
    ("Popen (fork + exec)", "system.py", "popen"),
    ("cgroup per spawn", "cgroup_home.py", "born_in"),
    ("change_state", "kernel.py", "change_state"),
    ("events to plugins", "fanout.py", "emit"),
    ("log records", "_native.py", "meth"),
    ("state-file writes", "statefile.py", "write"),
    ("reply (describe_all)", "__init__.py", "describe_all"),
]

RUNNER = """
import cProfile, runpy, sys, time
out, prof = sys.argv[1], cProfile.Profile(time.process_time)
sys.argv = ["corral.daemon.main"]
prof.enable()
try:
    runpy.run_module("corral.daemon.main", run_name="__main__", alter_sys=True)
finally:
    prof.disable()
    prof.dump_stats(out)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("apps", type=int)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="corral-profile-"))
    script = root / "sleeper.sh"
    script.write_text("#!/bin/sh\nexec sleep 3600\n")
    script.chmod(0o755)
    apps = [
        {"name": f"p{i:05d}", "script": str(script), "interpreter": "none"}
        for i in range(args.apps)
    ]
    (root / "apps.json").write_text(json.dumps({"apps": apps}))
    home, out = root / "home", root / "daemon.prof"
    home.mkdir()
    env = dict(os.environ, CORRAL_HOME=str(home))
    cli = [args.python, "-m", "corral"]
    daemon = subprocess.Popen(
        [args.python, "-c", RUNNER, str(out)], env=env, cwd=str(home), start_new_session=True
    )
    deadline = time.monotonic() + 30
    while not (home / "rpc.sock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    subprocess.run([*cli, "ping"], env=env, check=True, capture_output=True)
    started = time.perf_counter()
    subprocess.run([*cli, "start", str(root / "apps.json"), "--no-wait"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    wall = time.perf_counter() - started
    subprocess.run([*cli, "kill"], env=env, capture_output=True, timeout=600)
    daemon.wait(timeout=60)
    print(f"{args.apps} apps, start command {wall:.2f} s (wall, profiled); CPU ms per app:")
    for label, ms in per_app(out, args.apps):
        print(f"  {label:32s} {ms:8.3f}")
    shutil.rmtree(root, ignore_errors=True)


def per_app(path: Path, apps: int) -> list[tuple[str, float]]:
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for label, file, function in PHASES:
        total = sum(
            cumulative
            for (where, _, name), (_, _, _, cumulative, _) in stats.items()
            if name == function and where.endswith("/" + file)
        )
        rows.append((label, total * 1000 / apps))
    return rows


if __name__ == "__main__":
    main()
