"""What a run measures: the rows of the results table, the metric and group of each,
and the settings every group reads.

A *metric* is what ``--only`` selects; it may fill several rows (``daemon_rss_100``
fills the RSS and USS rows, with and without apps). A *group* runs several
metrics in one session per tool and run (the fleet: 100 apps started once, then
measured for memory, idle CPU and listing times).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    name: str
    metric: str  # the --only name that selects it
    unit: str
    goal: float | None  # the corral/PM2 ratio to stay under (over, if higher_is_better)
    about: str
    higher_is_better: bool = False
    limit: float | None = None  # a bound on corral's own figure, in every run (from the issue)
    only: tuple[str, ...] | None = None  # the tools that have this row (None: all)
    corral_row: str | None = None  # the corral row its ratios compare with (default: itself)


ROWS = (
    Row("cold_start", "cold_start", "s", 0.3, "no daemon -> one Python app online"),
    Row(
        "cold_start_pm2_node",
        "cold_start",
        "s",
        None,
        "note: PM2 with a node app (ratio is corral's Python app over it)",
        only=("pm2",),
        corral_row="cold_start",
    ),
    Row("start_100", "start_100", "s", 0.5, "100 Python apps (one config file) -> all online"),
    Row(
        "daemon_cpu_start_100",
        "start_100",
        "CPU ms",
        None,
        "CPU time of the daemon process during start_100",
    ),
    Row("start_100_bin", "start_100_bin", "s", 0.5, "100 `/bin/sleep 3600` apps -> all online"),
    Row(
        "restart_after_sigkill",
        "restart_after_sigkill",
        "ms",
        0.2,
        "SIGKILL the app -> new process running (median of the kills in a run)",
    ),
    Row(
        "restart_stamped",
        "restart_after_sigkill",
        "ms",
        None,
        "SIGKILL the app -> the new app's own start stamp (its interpreter's start included)",
    ),
    Row("list_100", "list_100", "ms", 0.3, "the list CLI command with 100 apps (median of 3)"),
    Row(
        "api_list_warm",
        "api_list_warm",
        "ms",
        None,
        "list the 100 apps through the API, one warm connection (median of 20 calls)",
    ),
    Row("daemon_rss_100", "daemon_rss_100", "MiB", 0.5, "daemon RSS with 100 apps"),
    Row("daemon_uss_100", "daemon_rss_100", "MiB", None, "daemon USS with 100 apps"),
    Row("daemon_rss_0", "daemon_rss_100", "MiB", None, "daemon RSS with no app"),
    Row("daemon_uss_0", "daemon_rss_100", "MiB", None, "daemon USS with no app"),
    Row("idle_cpu_100", "idle_cpu_100", "CPU ms", 1.0, "daemon CPU time while idle, 100 apps"),
    Row("log_throughput", "log_throughput", "s", 0.5, "start -> every line in the out log"),
    Row(
        "memory_limit_latency",
        "memory_limit_latency",
        "s",
        None,
        "app grown past its memory limit -> its replacement started (every sample)",
    ),
    Row(
        "watch_restart_latency",
        "watch_restart_latency",
        "ms",
        None,
        "file written in the watched dir -> the new child started (every sample)",
    ),
    Row(
        "reload_failed",
        "reload_under_load",
        "req/reload",
        None,
        "failed requests (errors + 2 s timeouts) per reload, 4 node instances under load",
        limit=0,
    ),
    Row(
        "reload_time",
        "reload_under_load",
        "s",
        1.0,
        "wall time of the reload command (4 instances) under load, median of the run's reloads",
    ),
    Row(
        "rps_cluster",
        "rps_cluster",
        "req/s",
        1.0,
        "requests/s through the shared port, 4 node instances, a connection per request",
        higher_is_better=True,
    ),
    Row(
        "rps_cluster_plain",
        "rps_cluster_plain",
        "req/s",
        1.0,
        "rps_cluster with bench/apps/plain.js: listen(PORT) itself, no signal handler, "
        "no corral option but -i 4",
        higher_is_better=True,
    ),
    Row(
        "reload_failed_plain",
        "reload_plain",
        "req/reload",
        None,
        "reload_failed with bench/apps/plain.js (unchanged: exits on SIGINT by default)",
        limit=0,
    ),
    Row(
        "reload_time_plain",
        "reload_plain",
        "s",
        None,
        "reload_time with bench/apps/plain.js",
    ),
    Row(
        "bus_events",
        "bus_throughput",
        "events/s",
        None,
        "log:out events/s at one subscriber, a child writing lines as fast as it can",
        higher_is_better=True,
    ),
    Row(
        "bus_lines",
        "bus_throughput",
        "lines/s",
        None,
        "log lines/s those events carry",
        higher_is_better=True,
    ),
    Row(
        "bus_latency",
        "bus_latency",
        "ms",
        None,
        "child's send -> subscriber, median of 200 messages",
        limit=1.0,
    ),
    Row("bus_latency_p99", "bus_latency", "ms", None, "child's send -> subscriber, p99"),
)

METRICS = tuple(dict.fromkeys(row.metric for row in ROWS))

GROUP_OF = {
    "cold_start": "cold_start",
    "restart_after_sigkill": "restart_after_sigkill",
    "start_100": "fleet",
    "start_100_bin": "fleet",
    "list_100": "fleet",
    "api_list_warm": "fleet",
    "daemon_rss_100": "fleet",
    "idle_cpu_100": "fleet",
    "log_throughput": "log_throughput",
    "memory_limit_latency": "memory_limit",
    "watch_restart_latency": "watch",
    "rps_cluster": "cluster",
    "reload_under_load": "cluster",
    "rps_cluster_plain": "cluster_plain",
    "reload_plain": "cluster_plain",
    "bus_throughput": "bus",
    "bus_latency": "bus",
}


@dataclass
class Settings:
    """What a run of the suite is asked for; files shared by every tool live in ``root``."""

    root: Path
    python: str
    lines: int
    idle_seconds: float
    settle_seconds: float
    kills: int = 20
    node: bool = True
    window_seconds: float = 5.0  # rps_cluster's and bus_throughput's measuring window
    reloads: int = 3
    api_calls: int = 20
    memory_samples: int = 2  # per run of memory_limit_latency
    touches: int = 5  # per run of watch_restart_latency

    @property
    def data_file(self) -> Path:
        return self.root / f"lines-{self.lines}.txt"


# a group's figures of one run ({row: value, or a list of samples}) and its raw details
Result = tuple[dict[str, Any], dict[str, Any]]
