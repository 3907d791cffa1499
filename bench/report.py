"""The results of a run: what was measured, and the markdown and JSON that show it.

The table has a column per tool (min / median / max of its samples), a ratio
column per peer (corral's median over the peer's), and the goal, which the
issues set against PM2. A tool that cannot do a metric shows ``n/a`` and the
short reason (the full one is in the notes); one that failed shows **failed**.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from suite import Row

NAMES = {"corral": "corral", "pm2": "PM2", "supervisor": "supervisor", "circus": "circus"}


@dataclass
class Results:
    tools: list[str]  # the tools measured, corral first
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (row, tool)
    errors: dict[tuple[str, str], str] = field(default_factory=dict)  # (row, tool)
    na: dict[tuple[str, str], str] = field(default_factory=dict)  # (metric, tool) -> why
    missing: dict[str, str] = field(default_factory=dict)  # tool -> why it is not measured
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def peers(self) -> list[str]:
        return [t for t in self.tools if t != "corral"]


def stats(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def median_of(results: Results, row: str, tool: str) -> float | None:
    values = results.samples.get((row, tool))
    return statistics.median(values) if values else None


def ratio_of(results: Results, row: Row, peer: str) -> float | None:
    corral = median_of(results, row.corral_row or row.name, "corral")
    other = median_of(results, row.name, peer)
    if corral is None or not other:
        return None
    return corral / other


def goal_met(results: Results, row: Row) -> bool | None:
    """The ratio's goal (vs PM2) and corral's own limit (every run), where the row has them."""
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


# -- markdown -------------------------------------------------------------------


def render(meta: dict[str, Any], rows: list[Row], results: Results) -> str:
    tools, peers = results.tools, results.peers
    header = ["metric", "unit", *(NAMES[t] for t in tools)]
    header += [f"corral/{NAMES[p]}" for p in peers] + ["goal (corral/PM2)"]
    out = [*_preamble(meta, results), "", _line(header), _line(["---"] * len(header))]
    for row in rows:
        cells = [row.name, row.unit, *(_cell(results, row, t) for t in tools)]
        for peer in peers:
            cells.append(_ratio(ratio_of(results, row, peer)))
        cells.append(_goal(row, goal_met(results, row)))
        out.append(_line(cells))
    out += ["", "Notes:", "", *_notes(rows, results, meta)]
    return "\n".join(out).rstrip() + "\n"


def _preamble(meta: dict[str, Any], results: Results) -> list[str]:
    machine = meta["machine"]
    versions = ", ".join(f"{NAMES[t]} {v}" for t, v in meta["versions"].items())
    lines = [
        f"# corral against {_and([NAMES[t] for t in results.peers]) or 'nothing'}",
        "",
        f"- Date: {meta['date']}",
        f"- Machine: {machine['cpu_model']}, {machine['cores']} cores, "
        f"{machine['memory_gib']:.0f} GiB, {machine['os']}",
        f"- Versions: {versions}; {meta['python']}, node {meta['node']}",
        f"- Command: `{meta['command']}`",
        f"- {meta['runs']} runs per tool and metric (memory_limit_latency: "
        f"{meta['memory_runs']} runs of {meta['memory_samples']} samples; "
        f"watch_restart_latency: {meta['touches']} samples a run); min / median / max "
        "of the samples; corral/X = corral's median over X's",
    ]
    for tool, why in results.missing.items():
        lines.append(f"- {NAMES.get(tool, tool)} not measured: {why}")
    return lines


def _ratio(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2g}" if 0 < ratio < 0.1 else f"{ratio:.2f}"  # 0.0022, not 0.00


def _and(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else "".join(names)


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


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
    if row.only is not None and tool not in row.only:
        return ""
    if (row.metric, tool) in results.na:
        return "n/a: " + short(results.na[(row.metric, tool)])
    values = results.samples.get((row.name, tool))
    failed = "**failed**" if (row.name, tool) in results.errors else ""
    if not values:
        return failed
    s = stats(values)
    figures = " / ".join(_number(s[k], row.unit) for k in ("min", "median", "max"))
    return f"{figures} ({len(values)} samples, then {failed})" if failed else figures


def short(reason: str) -> str:
    """A reason without its parenthesis: what fits in a cell."""
    return reason.split(" (")[0]


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f}"
    if value >= 1000:
        return f"{value:.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


# -- notes ------------------------------------------------------------------------


def _notes(rows: list[Row], results: Results, meta: dict[str, Any]) -> list[str]:
    notes = []
    wanted = {row.name for row in rows}
    for (row, tool), message in sorted(results.errors.items()):
        if row in wanted:
            notes.append(f"- {row} failed for {NAMES[tool]}: {message}")
    metrics = {row.metric for row in rows}
    for tool in results.tools:
        reasons: dict[str, list[str]] = {}
        for (metric, who), why in results.na.items():
            if who == tool and metric in metrics:
                reasons.setdefault(why, []).append(metric)
        for why, names in reasons.items():
            notes.append(f"- n/a for {NAMES[tool]}, {', '.join(names)}: {why}")
    notes += _log_notes(results)
    for key, label in (("cli_s", "Python app"), ("node_cli_s", "node app")):
        if figures := _raw_medians(results, key, "{:.3f} s"):
            notes.append(f"- cold_start, the start command alone ({label}, median): {figures}")
    if cpu := _raw_medians(results, "start_100_bin_daemon_cpu_ms", "{:.0f} CPU ms"):
        notes.append(f"- start_100_bin, the daemon's CPU time (median): {cpu}")
    if "idle_cpu_100" in wanted:
        notes.append(
            f"- idle_cpu_100: CPU ms the daemon used in a {meta['idle_window_s']:g} s idle window"
        )
    return notes + _cluster_notes(results) + _bus_notes(results)


def _log_notes(results: Results) -> list[str]:
    notes = []
    for tool in results.tools:
        checks = raw_of(results, tool, "log_check")
        if not checks:
            continue
        bad = [c for c in checks if c["lost"] or c["duplicated"] or c["torn"]]
        for c in bad:
            notes.append(
                f"- log_throughput {NAMES[tool]}: {c['lost']} lines lost, {c['duplicated']} "
                f"duplicated, {c['torn']} torn"
            )
        if not bad:
            notes.append(
                f"- log_throughput {NAMES[tool]}: all {checks[0]['lines']} lines intact, "
                f"in order, in {len(checks)}/{len(checks)} runs"
            )
    return notes


def raw_of(results: Results, tool: str, key: str) -> list[Any]:
    """The raw figures ``key`` of every run of ``tool`` that recorded them, in run order."""
    return [r[key] for r in results.runs if r["tool"] == tool and key in r]


def _cluster_notes(results: Results) -> list[str]:
    return _cluster_notes_of(results, "") + _cluster_notes_of(results, "_plain")


def _cluster_notes_of(results: Results, suffix: str) -> list[str]:
    """The notes of the cluster group (``suffix`` ""), or of cluster_plain ("_plain")."""
    notes = []
    for tool in results.tools:
        reloads = raw_of(results, tool, "reload" + suffix)
        if not reloads:
            continue
        kinds: Counter[str] = Counter()
        for r in reloads:
            kinds.update(r["failure_kinds"])
        per_run = ", ".join(str(r["failed"]) for r in reloads)
        count = sum(len(r["reload_s"]) for r in reloads)
        rate = statistics.median(r["rate"] for r in reloads)
        notes.append(
            f"- {'reload_plain' if suffix else 'reload_under_load'} {NAMES[tool]}: "
            f"{sum(kinds.values())} requests failed in "
            f"{count} reloads (per run: {per_run}){_kinds(kinds)}; "
            f"{sum(r['answered'] for r in reloads)} answered, {rate:.0f} req/s (median); "
            "every reload replaced all 4 pids"
        )
    for tool in results.tools:
        rps = raw_of(results, tool, "rps" + suffix)
        if rps:
            failed = sum(r["failed"] for r in rps)
            spread = ", ".join("/".join(map(str, r["answers_per_pid"])) for r in rps)
            notes.append(
                f"- rps_cluster{suffix} {NAMES[tool]}: {failed} requests failed; "
                f"answers per instance in each run: {spread}"
            )
    return notes


def _bus_notes(results: Results) -> list[str]:
    notes = []
    for tool in results.tools:
        found = raw_of(results, tool, "bus_throughput")
        if not found:
            continue
        size = statistics.median(r["bytes"] / max(1, r["events"]) for r in found)
        dropped = [r["dropped"] for r in found if r.get("dropped") is not None]
        lost = f", {sum(dropped)} events dropped (seq gaps)" if dropped else ""
        notes.append(
            f"- bus_throughput {NAMES[tool]}: {size / 1024:.1f} KiB per log:out event{lost}"
        )
    return notes


def _kinds(kinds: Counter[str]) -> str:
    return f" ({', '.join(f'{n} {k}' for k, n in kinds.most_common())})" if kinds else ""


def _raw_medians(results: Results, key: str, form: str) -> str:
    """'corral <median>, PM2 <median>, ...' of a raw figure of the runs, or ''."""
    found = {
        t: [r[key] for r in results.runs if r["tool"] == t and key in r] for t in results.tools
    }
    return ", ".join(
        f"{NAMES[t]} {form.format(statistics.median(v))}" for t, v in found.items() if v
    )


# -- JSON -------------------------------------------------------------------------


def to_json(meta: dict[str, Any], rows: list[Row], results: Results) -> dict[str, Any]:
    table = {}
    for row in rows:
        entry: dict[str, Any] = {
            "metric": row.metric,
            "unit": row.unit,
            "about": row.about,
            "goal": row.goal,
            "higher_is_better": row.higher_is_better,
            "limit": row.limit,
            "ratios": {peer: ratio_of(results, row, peer) for peer in results.peers},
            "goal_met": goal_met(results, row),
        }
        for tool in results.tools:
            if row.only is not None and tool not in row.only:
                continue
            values = results.samples.get((row.name, tool))
            entry[tool] = {
                "samples": values or [],
                **(stats(values) if values else {}),
                "error": results.errors.get((row.name, tool)),
                "na": results.na.get((row.metric, tool)),
            }
        table[row.name] = entry
    return {
        "meta": {**meta, "not_measured": results.missing},
        "metrics": table,
        "runs": results.runs,
    }
