"""A start the system's limits cannot hold is refused before anything starts.

The daemon runs with a real, low ``RLIMIT_NOFILE`` (set in the CLI that starts it,
which it inherits): a config file of more apps than it can hold, ``-i N`` past it
and a ``scale`` past it are each refused with one line naming the limit, its
value, what the start needs and the fix; no app is added, no process started,
and the daemon still answers. A start within the limit works. A daemon whose
soft limit is below its hard limit raises it at start (corral.daemon.limits).
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import psutil

from corral.daemon.limits import FDS_PER_INSTANCE
from tests.conftest import run_cli

SCRIPT = "#!/bin/sh\nexec sleep 3600\n"


def start_daemon(home: Path, soft: int, hard: int) -> psutil.Process:
    """``corral ping`` under ``ulimit -n`` soft/hard: the daemon it starts inherits them."""
    subprocess.run(
        [sys.executable, "-m", "corral", "ping"],
        check=True,
        capture_output=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )
    return psutil.Process(int((home / "corral.pid").read_text()))


def fleet(tmp_path: Path, count: int, stem: str) -> Path:
    script = tmp_path / "sleeper.sh"
    script.write_text(SCRIPT)
    script.chmod(0o755)
    apps = [
        {"name": f"{stem}-{i}", "script": str(script), "interpreter": "none"} for i in range(count)
    ]
    path = tmp_path / f"{stem}.json"
    path.write_text(json.dumps({"apps": apps}))
    return path


def open_files(proc: psutil.Process) -> tuple[int, int]:
    limits = Path(f"/proc/{proc.pid}/limits").read_text()
    soft, hard = re.search(r"Max open files\s+(\d+)\s+(\d+)", limits).groups()
    return int(soft), int(hard)


def refused(result: subprocess.CompletedProcess, needed: int) -> str:
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "RLIMIT_NOFILE" in line and "200" in line and f"{needed:,}" in line, line
    assert "ulimit -n" in line and "LimitNOFILE=" in line and "nothing was started" in line, line
    return line


def names(daemon: psutil.Process) -> list[str]:
    return sorted(p["name"] for p in json.loads(run_cli("jlist").stdout))


def test_a_start_past_the_open_files_limit_is_refused_and_starts_nothing(
    corral_home: Path, tmp_path: Path
) -> None:
    daemon = start_daemon(corral_home, 200, 200)
    assert open_files(daemon) == (200, 200)

    result = run_cli("start", "--no-wait", str(fleet(tmp_path, 30, "big")), check=False)
    refused(result, 30 * FDS_PER_INSTANCE)
    assert names(daemon) == [] and daemon.children() == []

    script = tmp_path / "sleeper.sh"
    result = run_cli("start", "--no-wait", str(script), "--name", "many", "-i", "40", check=False)
    refused(result, 40 * FDS_PER_INSTANCE)
    assert names(daemon) == [] and daemon.children() == []

    run_cli("start", "--no-wait", str(fleet(tmp_path, 5, "small")))  # within the limit
    assert names(daemon) == [f"small-{i}" for i in range(5)]
    assert len(daemon.children()) == 5

    run_cli("start", "--no-wait", str(script), "--name", "web")
    result = run_cli("scale", "web", "40", check=False)
    refused(result, 39 * FDS_PER_INSTANCE)
    assert names(daemon) == sorted([f"small-{i}" for i in range(5)] + ["web"])
    assert len(daemon.children()) == 6 and daemon.is_running()


def test_the_daemon_raises_its_soft_open_files_limit_to_the_hard_one(corral_home: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    daemon = start_daemon(corral_home, 256, hard)
    assert open_files(daemon) == (hard, hard)
