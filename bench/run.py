"""Benchmark corral against PM2 7 in the same run and print corral/PM2 ratios.

    python bench/run.py [--quick] [--only metric,...] [--json out.json]

PM2 is installed with npm into a temp prefix; both tools run in temp homes and
every process they start is stopped by pid at the end, even after a failure.
Timings never make this script fail: it exits 1 only when a tool errored.
See bench/README.md for what each metric measures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from busbench import bus
from cluster import cluster
from fleet import fleet
from metrics import (
    GROUP_OF,
    METRICS,
    ROWS,
    Result,
    Row,
    Settings,
    cold_start,
    log_throughput,
    prepare,
    restart_after_sigkill,
)
from tools import PM2, BenchError, Corral, Tool, install_pm2, sweep

TOOLS = ("corral", "pm2")
GROUPS: dict[str, Callable[[Tool, Settings, set[str]], Result]] = {
    "cold_start": cold_start,
    "restart_after_sigkill": restart_after_sigkill,
    "fleet": fleet,
    "log_throughput": log_throughput,
    "cluster": cluster,
    "bus": bus,
}


@dataclass
class Results:
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 runs, 200k log lines, 5 s idle")
    parser.add_argument("--runs", type=int, help="runs per tool and metric (default 5, quick 2)")
    parser.add_argument(
        "--only",
        type=_metric_list,
        default=list(METRICS),
        help=f"comma-separated metrics, from: {', '.join(METRICS)}",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="the Python that runs corral and the Python apps of both tools (default: this one)",
    )
    parser.add_argument(
        "--pm2-prefix",
        type=Path,
        help="reuse this npm prefix for PM2 (installed there if missing) instead of a temp one",
    )
    parser.add_argument("--lines", type=int, help="log lines (default 1000000, quick 200000)")
    parser.add_argument(
        "--idle", type=float, help="idle_cpu_100 window in seconds (default 10, quick 5)"
    )
    parser.add_argument(
        "--window",
        type=float,
        help="rps_cluster and bus_throughput window in seconds (default 5, quick 2)",
    )
    args = parser.parse_args(argv)
    args.runs = args.runs or (2 if args.quick else 5)
    args.lines = args.lines or (200_000 if args.quick else 1_000_000)
    args.idle = args.idle or (5.0 if args.quick else 10.0)
    args.window = args.window or (2.0 if args.quick else 5.0)
    return args


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
    signal.signal(signal.SIGTERM, _exit_on_term)
    wanted = set(args.only)
    root = Path(tempfile.mkdtemp(prefix="corral-bench-"))
    token = uuid.uuid4().hex
    settings = Settings(
        root=root,
        python=args.python,
        lines=args.lines,
        idle_seconds=args.idle,
        settle_seconds=1.0 if args.quick else 2.0,
        node=shutil.which("node") is not None,
        window_seconds=args.window,
    )
    tools: list[Tool] = []
    results = Results()
    try:
        prefix = install_pm2(args.pm2_prefix or root / "pm2")
        tools = [Corral(root, token, args.python), PM2(prefix, root, token, args.python)]
        meta = describe(args, settings, tools)
        _log(f"corral {meta['corral']} vs PM2 {meta['pm2']}, {args.runs} runs, in {root}")
        prepare(settings, wanted)
        for group in dict.fromkeys(GROUP_OF[m] for m in METRICS if m in wanted):
            run_group(group, tools, args.runs, settings, wanted, results)
    except BenchError as exc:
        _log(f"error: {exc}")
        return 2
    finally:
        for tool in tools:
            tool.shutdown()
        leftovers = sweep(token)
        if leftovers:
            _log(f"warning: killed leftover processes of this run: {leftovers}")
        shutil.rmtree(root, ignore_errors=True)
    rows = [row for row in ROWS if row.metric in wanted]
    print(render(meta, rows, results))
    if args.json:
        args.json.write_text(json.dumps(to_json(meta, rows, results), indent=2) + "\n")
        _log(f"wrote {args.json}")
    return 1 if results.errors else 0


def run_group(
    group: str,
    tools: list[Tool],
    runs: int,
    settings: Settings,
    wanted: set[str],
    results: Results,
) -> None:
    """Run one group ``runs`` times per tool, alternating which tool goes first."""
    rows = [row for row in ROWS if row.metric in wanted and GROUP_OF[row.metric] == group]
    for run in range(runs):
        for tool in tools if run % 2 == 0 else tools[::-1]:
            mine = [row for row in rows if not (row.pm2_only and tool.label != "pm2")]
            if any((row.name, tool.label) in results.errors for row in mine):
                continue  # this tool already failed here: keep going with the others
            _log(f"{group}: run {run + 1}/{runs}, {tool.label}")
            try:
                values, raw = GROUPS[group](tool, settings, wanted)
            except Exception as exc:
                message = (
                    str(exc) if isinstance(exc, BenchError) else f"{type(exc).__name__}: {exc}"
                )
                _log(f"  failed: {message}")
                for row in mine:
                    results.errors[(row.name, tool.label)] = f"run {run + 1}: {message}"
                continue
            for row in mine:
                if row.name in values:
                    results.samples.setdefault((row.name, tool.label), []).append(values[row.name])
            results.runs.append(
                {"group": group, "tool": tool.label, "run": run + 1, "values": values, **raw}
            )
            _log("  " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))


def describe(args: argparse.Namespace, settings: Settings, tools: list[Tool]) -> dict[str, Any]:
    corral, pm2 = tools
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run.py", *(sys.argv[1:])]),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": _first_line([args.python, "--version"]),
        "node": _first_line(["node", "--version"]) if settings.node else None,
        "corral": corral.version(),
        "pm2": pm2.version(),
        "runs": args.runs,
        "log_lines": settings.lines,
        "idle_window_s": settings.idle_seconds,
        "settle_s": settings.settle_seconds,
        "kills_per_run": settings.kills,
        "window_s": settings.window_seconds,
        "reloads_per_run": settings.reloads,
    }


# -- output ---------------------------------------------------------------------


def stats(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def median_of(results: Results, row: str, tool: str) -> float | None:
    values = results.samples.get((row, tool))
    return statistics.median(values) if values else None


def ratio_of(results: Results, row: Row) -> float | None:
    corral = median_of(results, "cold_start" if row.pm2_only else row.name, "corral")
    pm2 = median_of(results, row.name, "pm2")
    if corral is None or not pm2:
        return None
    return corral / pm2


def goal_met(results: Results, row: Row) -> bool | None:
    """The ratio's goal and corral's own limit (every run), where the row has them."""
    corral, pm2 = median_of(results, row.name, "corral"), median_of(results, row.name, "pm2")
    verdicts = []
    if row.goal is not None and corral is not None and pm2 is not None:
        target = row.goal * pm2
        verdicts.append(corral >= target if row.higher_is_better else corral <= target)
    samples = results.samples.get((row.name, "corral"))
    if row.limit is not None and samples:
        verdicts.append(
            min(samples) >= row.limit if row.higher_is_better else max(samples) <= row.limit
        )
    return all(verdicts) if verdicts else None


def render(meta: dict[str, Any], rows: list[Row], results: Results) -> str:
    out = [
        f"corral {meta['corral']} vs PM2 {meta['pm2']} (node {meta['node']}), "
        f"{meta['python']}, {meta['cpus']} CPUs, {meta['platform']}, {meta['date']}",
        f"`{meta['command']}`: {meta['runs']} runs per tool, min / median / max; "
        "ratio = corral median / PM2 median",
        "",
        "| metric | unit | corral | PM2 | corral/PM2 | goal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio, met = ratio_of(results, row), goal_met(results, row)
        goal = _goal(row, met)
        cells = [_cell(results, row, tool) for tool in TOOLS]
        out.append(
            f"| {row.name} | {row.unit} | {cells[0]} | {cells[1]} | "
            f"{'' if ratio is None else f'{ratio:.2f}'} | {goal} |"
        )
    out += ["", *_notes(rows, results, meta["idle_window_s"])]
    return "\n".join(out).rstrip() + "\n"


def _goal(row: Row, met: bool | None) -> str:
    sign = ">=" if row.higher_is_better else "<="
    parts = []
    if row.goal is not None:
        parts.append(f"{sign} {row.goal:g}")
    if row.limit is not None:
        parts.append(f"corral {sign} {row.limit:g} {row.unit} every run")
    verdict = {None: "", True: " met", False: " MISSED"}[met]
    text = " ".join(parts) + verdict
    if row.higher_is_better:
        text = f"{text} (higher is better)".strip()
    return text


def _cell(results: Results, row: Row, tool: str) -> str:
    if row.pm2_only and tool == "corral":
        return "(n/a)"
    values = results.samples.get((row.name, tool))
    failed = "**failed**" if (row.name, tool) in results.errors else ""
    if not values:
        return failed
    s = stats(values)
    figures = " / ".join(_number(s[k], row.unit) for k in ("min", "median", "max"))
    return f"{figures} ({len(values)} runs, then {failed})" if failed else figures


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f}"
    if value >= 1000:
        return f"{value:.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _notes(rows: list[Row], results: Results, idle: float) -> list[str]:
    notes = []
    wanted = {row.name for row in rows}
    for (row, tool), message in sorted(results.errors.items()):
        if row in wanted:
            notes.append(f"- {row} failed for {tool}: {message}")
    for tool in TOOLS:
        checks = [r["log_check"] for r in results.runs if r["tool"] == tool and "log_check" in r]
        if not checks:
            continue
        bad = [c for c in checks if c["lost"] or c["duplicated"] or c["torn"]]
        if bad:
            for c in bad:
                notes.append(
                    f"- log_throughput {tool}: {c['lost']} lines lost, {c['duplicated']} "
                    f"duplicated, {c['torn']} torn"
                )
        else:
            notes.append(
                f"- log_throughput {tool}: all {checks[0]['lines']} lines intact, "
                f"in order, in {len(checks)}/{len(checks)} runs"
            )
    for key, label in (("cli_s", "Python app"), ("node_cli_s", "node app")):
        if figures := _raw_medians(results, key, "{:.3f} s"):
            notes.append(f"- cold_start, the `start` command alone ({label}, median): {figures}")
    if cpu := _raw_medians(results, "start_100_bin_daemon_cpu_ms", "{:.0f} CPU ms"):
        notes.append(f"- start_100_bin, the daemon's CPU time (median): {cpu}")
    if "idle_cpu_100" in wanted:
        notes.append(f"- idle_cpu_100: CPU ms the daemon used in a {idle:g} s idle window")
    notes += _cluster_notes(results) + _bus_notes(results)
    return notes


def _cluster_notes(results: Results) -> list[str]:
    notes = []
    for tool in TOOLS:
        reloads = [r["reload"] for r in results.runs if r["tool"] == tool and "reload" in r]
        if not reloads:
            continue
        kinds: Counter[str] = Counter()
        for r in reloads:
            kinds.update(r["failure_kinds"])
        per_run = ", ".join(str(r["failed"]) for r in reloads)
        count = sum(len(r["reload_s"]) for r in reloads)
        rate = statistics.median(r["rate"] for r in reloads)
        notes.append(
            f"- reload_under_load {tool}: {sum(kinds.values())} requests failed in {count} "
            f"reloads (per run: {per_run}){_kinds(kinds)}; "
            f"{sum(r['answered'] for r in reloads)} answered, {rate:.0f} req/s (median); "
            "every reload replaced all 4 pids"
        )
    for tool in TOOLS:
        rps = [r["rps"] for r in results.runs if r["tool"] == tool and "rps" in r]
        if rps:
            failed = sum(r["failed"] for r in rps)
            spread = ", ".join("/".join(map(str, r["answers_per_pid"])) for r in rps)
            notes.append(
                f"- rps_cluster {tool}: {failed} requests failed; answers per instance "
                f"in each run: {spread}"
            )
    return notes


def _bus_notes(results: Results) -> list[str]:
    notes = []
    for tool in TOOLS:
        found = [
            r["bus_throughput"] for r in results.runs if r["tool"] == tool and "bus_throughput" in r
        ]
        if not found:
            continue
        size = statistics.median(r["bytes"] / max(1, r["events"]) for r in found)
        dropped = [r["dropped"] for r in found if r.get("dropped") is not None]
        lost = f", {sum(dropped)} events dropped (seq gaps)" if dropped else ""
        notes.append(f"- bus_throughput {tool}: {size / 1024:.1f} KiB per log:out event{lost}")
    return notes


def _kinds(kinds: Counter[str]) -> str:
    return f" ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})" if kinds else ""


def _raw_medians(results: Results, key: str, form: str) -> str:
    """'corral <median>, pm2 <median>' of a raw figure of the runs, or ''."""
    found = {t: [r[key] for r in results.runs if r["tool"] == t and key in r] for t in TOOLS}
    return ", ".join(f"{t} {form.format(statistics.median(v))}" for t, v in found.items() if v)


def to_json(meta: dict[str, Any], rows: list[Row], results: Results) -> dict[str, Any]:
    table = {}
    for row in rows:
        entry: dict[str, Any] = {
            "unit": row.unit,
            "about": row.about,
            "goal": row.goal,
            "higher_is_better": row.higher_is_better,
            "limit": row.limit,
            "ratio": ratio_of(results, row),
            "goal_met": goal_met(results, row),
        }
        for tool in TOOLS:
            values = results.samples.get((row.name, tool))
            entry[tool] = {
                "samples": values or [],
                **(stats(values) if values else {}),
                "error": results.errors.get((row.name, tool)),
            }
        table[row.name] = entry
    return {"meta": meta, "metrics": table, "runs": results.runs}


# -- helpers --------------------------------------------------------------------


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"unknown ({exc})"
    return (done.stdout.strip() or done.stderr.strip()).splitlines()[0]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _exit_on_term(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the daemons


if __name__ == "__main__":
    sys.exit(main())
