"""The scale bench's markdown: one table per run of ``bench/scale.py``, floor beside the tools.

Rows are ``<figure>_<N>``; the floor column is the Python ``Popen`` of the same N
scripts in the same run (median), beside the start rows. A second table puts each
tool's per-app figures side by side for every N, so a cost that grows with N (an
O(n^2) somewhere) shows as a per-app figure that grows.
"""

from __future__ import annotations

import statistics
from typing import Any

from report import NAMES, Results, _cell, _goal, _line, _ratio, goal_met, median_of, ratio_of
from suite import Row

PER_APP = ("start_per_app", "list_per_app", "rss_per_app")


def render(meta: dict[str, Any], rows: list[Row], results: Results, floors: dict) -> str:
    tools, peers = results.tools, results.peers
    header = ["metric", "unit", "floor", *(NAMES[t] for t in tools)]
    header += [f"corral/{NAMES[p]}" for p in peers] + ["goal (corral/PM2)"]
    out = [*_preamble(meta, results), "", _line(header), _line(["---"] * len(header))]
    for row in rows:
        cells = [row.name, row.unit, _floor(row, floors)]
        cells += [_cell(results, row, t) for t in tools]
        cells += [_ratio(ratio_of(results, row, p)) for p in peers]
        cells.append(_goal(row, goal_met(results, row)))
        out.append(_line(cells))
    out += ["", *_per_app(meta["scale"], results, floors), "", "Notes:", ""]
    out += _notes(rows, results, meta)
    return "\n".join(out).rstrip() + "\n"


def _preamble(meta: dict[str, Any], results: Results) -> list[str]:
    m, limits, nofile = meta["machine"], meta["limits"], meta["nofile"]
    versions = ", ".join(f"{NAMES[t]} {v}" for t, v in meta["versions"].items())
    load = ", ".join(f"{x:.2f}" for x in meta["load_average"])
    lines = [
        f"# Scale: corral at {', '.join(f'{n:,}' for n in meta['scale'])} apps",
        "",
        f"- Date: {meta['date']}; load average at the start {load}",
        f"- Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']:.0f} GiB, {m['os']}",
        f"- Versions: {versions}; {meta['python']}, node {meta['node']}; corral's plugins: "
        f"{meta['plugins']}",
        f"- Limits: RLIMIT_NOFILE raised from {nofile['before']} to {nofile['soft']} (the "
        f"hard limit) for every tool; pid_max {limits['pid_max']}, threads-max "
        f"{limits['threads-max']}, RLIMIT_NPROC {limits['nproc']}",
        f"- Command: `{meta['command']}`",
        f"- {meta['runs']} runs per tool and N; min / median / max; corral/X = corral's "
        "median over X's; apps: `sh` scripts that `exec sleep 3600` (`interpreter: none`)",
    ]
    for tool, why in results.missing.items():
        lines.append(f"- {NAMES.get(tool, tool)} not measured: {why}")
    return lines


def _floor(row: Row, floors: dict) -> str:
    count = int(row.name.rsplit("_", 1)[1])
    values = floors.get(count)
    if not values:
        return ""
    if row.name.startswith(("start_exist", "start_online")):
        return f"{statistics.median(values):.3f}"
    if row.name.startswith("start_per_app"):
        return f"{statistics.median(values) / count * 1000:.3f}"
    return ""


def _per_app(scale: list[int], results: Results, floors: dict) -> list[str]:
    header = ["per app", *(f"{NAMES[t]} at {n:,}" for t in results.tools for n in scale)]
    out = ["Per-app figures (medians), across N:", "", _line(header)]
    out.append(_line(["---"] * len(header)))
    for name in PER_APP:
        cells = [name]
        for tool in results.tools:
            for n in scale:
                value = median_of(results, f"{name}_{n}", tool)
                cells.append("" if value is None else f"{value:.3g}")
        out.append(_line(cells))
    cells = ["Popen floor per app (ms)"]
    for tool in results.tools:
        for n in scale:
            values = floors.get(n)
            first = tool == results.tools[0]
            cells.append(f"{statistics.median(values) / n * 1000:.3g}" if values and first else "")
    out.append(_line(cells))
    return out


def _notes(rows: list[Row], results: Results, meta: dict[str, Any]) -> list[str]:
    notes = []
    for (row, tool), message in sorted(results.errors.items()):
        if row.startswith("start_exist"):  # one line per failed session
            notes.append(f"- {NAMES[tool]} failed at {row.rsplit('_', 1)[1]} apps: {message}")
    reasons: dict[tuple[str, str], list[str]] = {}
    for (row, tool), why in results.na.items():
        reasons.setdefault((tool, why), []).append(row)
    for (tool, why), names in reasons.items():
        notes.append(f"- n/a for {NAMES[tool]}, {', '.join(names)}: {why}")
    for n in meta["scale"]:
        floor = meta["floors"].get(str(n))
        corral = median_of(results, f"start_online_{n}", "corral")
        if floor and corral:
            notes.append(
                f"- {n:,} apps: corral's start_online is {corral / statistics.median(floor):.1f}x "
                "the Popen floor (goal: at most 2x)"
            )
    notes.append(
        f"- idle_cpu: the daemon's CPU over a {meta['idle_window_s']:g} s window, per second; "
        f"a start gets {meta['timeout_s']:g} s before it counts as failed"
    )
    return notes
