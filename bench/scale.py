"""Scale: N apps on one daemon (100, 1,000, 10,000), each tool beside the Popen floor.

    python bench/scale.py [--scale 100,1000] [--peers corral,pm2] [--runs N] [--quick]

Every app is an ``sh`` script that ``exec sleep 3600``, all N in one ecosystem file,
started on a fresh home (and daemon) per tool and run. Per N it measures: the
floor (Python ``Popen`` of the same N scripts one after the other, in the same
run), the time until every process exists and until the listing shows all
online, the latency of API lists issued while the start runs, the warm API list,
the CLI ``ls`` and ``jlist``, the daemon's RSS with 0 and N apps, its idle CPU,
and the per-app figures that show whether a cost grows as O(n) or O(n^2).
Writes bench/SCALE.md (``--results``) and a JSON beside it; see bench/README.md.
Timings never make it fail: it exits 1 only when a tool errored.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import signal
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from metrics import write_ecosystem
from report import Results, to_json
from run import _first_line, machine, make_tools
from scalereport import render
from scalerun import ROW_SPECS, popen_floor, rows_for, session
from tools import BenchError, Tool, exit_on_term, log, tear_down

HERE = Path(__file__).resolve().parent
ALL_TOOLS = ("corral", "pm2", "supervisor", "circus")
SCRIPT = "#!/bin/sh\nexec sleep 3600\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scale", default="100,1000", help="app counts, comma-separated (default 100,1000)"
    )
    parser.add_argument(
        "--peers",
        default="corral,pm2",
        help=f"tools, from {', '.join(ALL_TOOLS)} (corral always; default corral,pm2)",
    )
    parser.add_argument("--quick", action="store_true", help="1 run, a 3 s idle window")
    parser.add_argument("--runs", type=int, help="runs per tool and N (default 3, quick 1)")
    parser.add_argument("--idle", type=float, help="idle CPU window, s (default 10, quick 3)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="give each start this long to bring every app online (default 600 s)",
    )
    parser.add_argument("--python", default=sys.executable, help="the Python of corral")
    parser.add_argument("--pm2-prefix", type=Path, help="reuse this npm prefix for PM2")
    parser.add_argument("--peers-venv", type=Path, help="reuse this venv for supervisor, circus")
    parser.add_argument("--results", type=Path, default=HERE / "SCALE.md")
    parser.add_argument("--json", type=Path, help="default: beside --results, .json")
    args = parser.parse_args(argv)
    args.scale = [int(n.replace("_", "")) for n in args.scale.split(",") if n.strip()]
    names = [n.strip().lower() for n in args.peers.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL_TOOLS]
    if unknown:
        parser.error(f"unknown peer {', '.join(unknown)}: choose from {', '.join(ALL_TOOLS)}")
    args.peers = [t for t in ALL_TOOLS if t == "corral" or t in names]
    args.runs = args.runs or (1 if args.quick else 3)
    args.idle = args.idle or (3.0 if args.quick else 10.0)
    args.json = args.json or args.results.with_suffix(".json")
    return args


def raise_nofile() -> dict[str, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (all a process may do without
    CAP_SYS_RESOURCE); every daemon the bench starts inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return {"before": soft, "soft": hard, "hard": hard}


def kernel_limits() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in ("kernel/pid_max", "kernel/threads-max", "fs/nr_open"):
        try:
            found[key.split("/")[1]] = int(Path(f"/proc/sys/{key}").read_text())
        except OSError:
            found[key.split("/")[1]] = None
    found["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    return found


def write_fleet(root: Path, count: int) -> Path:
    """The N scripts and one ecosystem file of N apps (``interpreter: none``)."""
    scripts = root / f"apps-{count}"
    scripts.mkdir(parents=True, exist_ok=True)
    apps = []
    for i in range(count):
        script = scripts / f"s{i:05d}.sh"
        script.write_text(SCRIPT)
        script.chmod(0o755)
        apps.append({"name": f"s{i:05d}", "script": str(script), "interpreter": "none"})
    return write_ecosystem(root / f"scale-{count}.json", apps)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    signal.signal(signal.SIGTERM, exit_on_term)
    nofile = raise_nofile()
    root = Path(tempfile.mkdtemp(prefix="corral-scale-"))
    token = uuid.uuid4().hex
    results = Results(tools=[])
    tools: list[Tool] = []
    floors: dict[int, list[float]] = {}
    try:
        tools = make_tools(args, root, token, results)
        results.tools = [t.label for t in tools]
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": command,
            "machine": machine(),
            "load_average": os.getloadavg(),
            "python": _first_line([args.python, "--version"]),
            "node": _first_line(["node", "--version"]),
            "versions": {t.label: t.version() for t in tools},
            "plugins": tools[0].env()["CORRAL_PLUGINS"],
            "nofile": nofile,
            "limits": kernel_limits(),
            "runs": args.runs,
            "idle_window_s": args.idle,
            "scale": args.scale,
            "timeout_s": args.timeout,
        }
        log(f"{meta['versions']}; RLIMIT_NOFILE {nofile}; {args.runs} runs, in {root}")
        for count in args.scale:
            path = write_fleet(root / "shared", count)
            for run in range(args.runs):
                floor = popen_floor(path, token)
                floors.setdefault(count, []).append(floor)
                log(f"{count} apps, run {run + 1}: Popen floor {floor:.3f} s")
                shift = run % len(tools)
                for tool in tools[shift:] + tools[:shift]:
                    _one(tool, count, path, run, args, results)
    finally:
        tear_down(tools, token, root)
    meta["floors"] = {str(n): v for n, v in floors.items()}
    rows = [row for n in args.scale for row in rows_for(n)]
    text = render(meta, rows, results, floors)
    print(text)
    args.results.write_text(text)
    args.json.write_text(json.dumps(to_json(meta, rows, results), indent=2) + "\n")
    log(f"wrote {args.results} and {args.json}")
    return 1 if results.errors else 0


def _one(
    tool: Tool, count: int, path: Path, run: int, args: argparse.Namespace, results: Results
) -> None:
    """One session: record its figures, or its n/a or failure for every row of this N."""
    names = [f"{spec[0]}_{count}" for spec in ROW_SPECS]
    if any((name, tool.label) in results.errors for name in names):
        return  # failed at this N already (a 10-minute start is not retried)
    log(f"{count} apps: run {run + 1}/{args.runs}, {tool.label}")
    try:
        values, raw = session(tool, count, path, args.idle, args.timeout)
    except Exception as exc:
        message = str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
        log(f"  failed: {message}")
        for name in names:
            results.errors[(name, tool.label)] = f"run {run + 1}: {message}"
        return
    for name, value in values.items():
        if isinstance(value, str):
            results.na[(name, tool.label)] = value
        else:
            results.samples.setdefault((name, tool.label), []).append(value)
    results.runs.append({"tool": tool.label, "apps": count, "run": run + 1, **raw})
    log("  " + ", ".join(f"{k} {v:.4g}" for k, v in values.items() if not isinstance(v, str)))


if __name__ == "__main__":
    sys.exit(main())
