"""Benchmark corral against PM2, supervisor and circus in the same run, on the same machine.

    python bench/run.py [--peers corral,pm2,supervisor,circus] [--quick] [--only metric,...]

PM2 is installed with npm into a temp prefix, supervisor and circus with pip into
a venv of their own; a peer that fails to install is reported and the run goes on
with the others. Every tool runs in temp homes, driven through its own CLI, and
every process it starts is stopped by pid at the end, even after a failure.
Writes bench/RESULTS.md (``--results``) and bench/results.json (``--json``), and
prints the table. Timings never make this script fail: it exits 1 only when a
tool errored. See bench/README.md for what each metric measures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from busbench import bus
from cluster import cluster, cluster_plain
from fleet import fleet
from metrics import cold_start, log_throughput, prepare, restart_after_sigkill
from peers import PEERS, install_peer
from report import Results, render, to_json
from suite import GROUP_OF, METRICS, ROWS, Result, Row, Settings
from tools import PM2, BenchError, Corral, Tool, exit_on_term, install_pm2, log, tear_down
from triggers import memory_limit, watch

HERE = Path(__file__).resolve().parent
ALL_TOOLS = ("corral", "pm2", "supervisor", "circus")
GROUPS: dict[str, Callable[[Tool, Settings, set[str]], Result]] = {
    "cold_start": cold_start,
    "restart_after_sigkill": restart_after_sigkill,
    "fleet": fleet,
    "log_throughput": log_throughput,
    "memory_limit": memory_limit,
    "watch": watch,
    "cluster": cluster,
    "cluster_plain": cluster_plain,
    "bus": bus,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--peers",
        type=_peer_list,
        default=list(ALL_TOOLS),
        help=f"comma-separated tools to measure, from {', '.join(ALL_TOOLS)} (corral always)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 runs, 200k log lines, 5 s idle, 1 memory run"
    )
    parser.add_argument("--runs", type=int, help="runs per tool and metric (default 5, quick 2)")
    parser.add_argument(
        "--only",
        type=_metric_list,
        default=list(METRICS),
        help=f"comma-separated metrics, from: {', '.join(METRICS)}",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=HERE / "RESULTS.md",
        help="write the markdown here (default bench/RESULTS.md, overwritten)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="write every sample here (default bench/results.json, or beside --results)",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the Python that runs corral and every tool's Python apps, and creates the "
        "peers' venv (default: this one)",
    )
    parser.add_argument(
        "--pm2-prefix",
        type=Path,
        help="reuse this npm prefix for PM2 (installed there if missing) instead of a temp one",
    )
    parser.add_argument(
        "--peers-venv",
        type=Path,
        help="reuse this venv for supervisor and circus (installed there if missing)",
    )
    parser.add_argument("--lines", type=int, help="log lines (default 1000000, quick 200000)")
    parser.add_argument(
        "--idle", type=float, help="idle_cpu_100 window in seconds (default 30, quick 5)"
    )
    parser.add_argument(
        "--window",
        type=float,
        help="rps_cluster and bus_throughput window in seconds (default 5, quick 2)",
    )
    parser.add_argument(
        "--memory-runs",
        type=int,
        help="runs of memory_limit_latency, at most --runs (default 2, quick 1): PM2 "
        "looks every 30 s",
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 5)
    args.lines = args.lines or (200_000 if args.quick else 1_000_000)
    args.idle = args.idle or (5.0 if args.quick else 30.0)
    args.window = args.window or (2.0 if args.quick else 5.0)
    args.memory_runs = min(args.runs, args.memory_runs or (1 if args.quick else 2))
    if args.json is None:
        default = args.results == HERE / "RESULTS.md"
        args.json = HERE / "results.json" if default else args.results.with_suffix(".json")
    return args


def _peer_list(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ALL_TOOLS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown peer {', '.join(unknown)}: choose from {', '.join(ALL_TOOLS)}"
        )
    return [t for t in ALL_TOOLS if t == "corral" or t in names]


def _metric_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METRICS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown metric {', '.join(unknown) or '(none)'}: choose from {', '.join(METRICS)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([sys.executable, sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    signal.signal(signal.SIGTERM, exit_on_term)
    wanted = set(args.only)
    root = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    token = uuid.uuid4().hex
    settings = Settings(
        root=root / "shared",
        python=args.python,
        lines=args.lines,
        idle_seconds=args.idle,
        settle_seconds=1.0 if args.quick else 2.0,
        node=shutil.which("node") is not None,
        window_seconds=args.window,
        touches=3 if args.quick else 5,
    )
    tools: list[Tool] = []
    results = Results(tools=[])
    try:
        tools = make_tools(args, root, token, results)
        results.tools = [tool.label for tool in tools]
        for tool in tools:
            for metric, why in tool.unsupported.items():
                results.na[(metric, tool.label)] = why
        meta = describe(args, settings, tools, command)
        versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        log(f"{versions}; {args.runs} runs, in {root}")
        prepare(settings, wanted)
        for group in dict.fromkeys(GROUP_OF[m] for m in METRICS if m in wanted):
            runs = args.memory_runs if group == "memory_limit" else args.runs
            run_group(group, tools, runs, settings, wanted, results)
    finally:
        tear_down(tools, token, root)
    rows = [row for row in ROWS if row.metric in wanted and _anyone_has(row, results.tools)]
    text = render(meta, rows, results)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    args.json.write_text(json.dumps(to_json(meta, rows, results), indent=2) + "\n")
    log(f"wrote {args.results} and {args.json}")
    return 1 if results.errors else 0


def make_tools(args: argparse.Namespace, root: Path, token: str, results: Results) -> list[Tool]:
    """The tools asked for, each installed if needed; one that cannot be goes to ``missing``."""
    tools: list[Tool] = [Corral(root, token, args.python)]
    if "pm2" in args.peers:
        try:
            prefix = install_pm2(args.pm2_prefix or root / "pm2")
            tools.append(PM2(prefix, root, token, args.python))
        except (BenchError, OSError) as exc:
            results.missing["pm2"] = f"install failed: {exc}"
            log(f"PM2 not measured: {exc}")
    venv = args.peers_venv or root / "peers-venv"
    for label, peer in PEERS.items():
        if label not in args.peers:
            continue
        try:
            install_peer(label, venv, args.python)
            tools.append(peer(venv, root, token, args.python))
        except (BenchError, OSError) as exc:
            results.missing[label] = f"install failed: {exc}"
            log(f"{label} not measured: {exc}")
    return tools


def _anyone_has(row: Row, tools: list[str]) -> bool:
    return row.only is None or any(tool in row.only for tool in tools)


def does(tool: Tool, row: Row) -> bool:
    """Whether ``tool`` has this row at all (not n/a, not another tool's row)."""
    return (row.only is None or tool.label in row.only) and row.metric not in tool.unsupported


def run_group(
    group: str,
    tools: list[Tool],
    runs: int,
    settings: Settings,
    wanted: set[str],
    results: Results,
) -> None:
    """Run one group ``runs`` times per tool, rotating which tool goes first."""
    rows = [row for row in ROWS if row.metric in wanted and GROUP_OF[row.metric] == group]
    for run in range(runs):
        shift = run % len(tools)
        for tool in tools[shift:] + tools[:shift]:
            mine = [row for row in rows if does(tool, row)]
            if not mine or any((row.name, tool.label) in results.errors for row in mine):
                continue  # n/a, or this tool already failed here: keep going with the others
            log(f"{group}: run {run + 1}/{runs}, {tool.label}")
            try:
                values, raw = GROUPS[group](tool, settings, {row.metric for row in mine})
            except Exception as exc:
                message = (
                    str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
                )
                log(f"  failed: {message}")
                for row in mine:
                    results.errors[(row.name, tool.label)] = f"run {run + 1}: {message}"
                continue
            for row in mine:
                if row.name in values:
                    value = values[row.name]
                    samples = results.samples.setdefault((row.name, tool.label), [])
                    samples.extend(value if isinstance(value, list) else [value])
            results.runs.append(
                {"group": group, "tool": tool.label, "run": run + 1, "values": values, **raw}
            )
            log("  " + ", ".join(f"{k} {_figures(v)}" for k, v in values.items()))


def describe(
    args: argparse.Namespace, settings: Settings, tools: list[Tool], command: str
) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "python": _first_line([args.python, "--version"]),
        "node": _first_line(["node", "--version"]) if settings.node else None,
        "versions": {tool.label: tool.version() for tool in tools},
        "peers": args.peers,
        "runs": args.runs,
        "memory_runs": args.memory_runs,
        "memory_samples": settings.memory_samples,
        "touches": settings.touches,
        "log_lines": settings.lines,
        "idle_window_s": settings.idle_seconds,
        "settle_s": settings.settle_seconds,
        "kills_per_run": settings.kills,
        "window_s": settings.window_seconds,
        "reloads_per_run": settings.reloads,
        "api_calls": settings.api_calls,
    }


def machine() -> dict[str, Any]:
    """CPU model, cores, memory and OS of this machine."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            found = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = found[0] if found else model
    except OSError:
        pass
    os_name = f"{platform.system()} {platform.release()}"
    try:
        fields = (line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines())
        release = {k: v.strip('"') for k, v in (f for f in fields if len(f) == 2)}
        os_name += f" ({release['PRETTY_NAME']})" if "PRETTY_NAME" in release else ""
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 1024**3,
        "os": os_name,
        "platform": platform.platform(),
    }


# -- helpers --------------------------------------------------------------------


def _figures(value: float | list[float]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    return f"{value:.4g}"


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"unknown ({exc})"
    return (done.stdout.strip() or done.stderr.strip()).splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
