"""A start the system's limits cannot hold is refused before anything starts.

The daemon runs with a real, low ``RLIMIT_NOFILE`` (set in the CLI that starts it,
which it inherits): a config file of more apps than it can hold, ``-i N`` past it
and a ``scale`` past it are each refused with one line naming the limit, its
value, what the start needs and the fix; no app is added, no process started,
and the daemon still answers. A start within the limit works. A daemon whose
soft limit is below its hard limit raises it at start (corral.daemon.limits).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import corral
from corral.daemon.limits import FDS_PER_INSTANCE
from corral.testing import apps_of, kill_tree
from tests.conftest import run_cli

SCRIPT = "#!/bin/sh\nexec sleep 3600\n"
PYTHON = "/usr/bin/python3"


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
    assert names(daemon) == [] and apps_of(daemon.pid) == []

    script = tmp_path / "sleeper.sh"
    result = run_cli("start", "--no-wait", str(script), "--name", "many", "-i", "40", check=False)
    refused(result, 40 * FDS_PER_INSTANCE)
    assert names(daemon) == [] and apps_of(daemon.pid) == []

    run_cli("start", "--no-wait", str(fleet(tmp_path, 5, "small")))  # within the limit
    assert names(daemon) == [f"small-{i}" for i in range(5)]
    assert len(apps_of(daemon.pid)) == 5

    run_cli("start", "--no-wait", str(script), "--name", "web")
    result = run_cli("scale", "web", "40", check=False)
    refused(result, 39 * FDS_PER_INSTANCE)
    assert names(daemon) == sorted([f"small-{i}" for i in range(5)] + ["web"])
    assert len(apps_of(daemon.pid)) == 6 and daemon.is_running()


def test_the_daemon_raises_its_soft_open_files_limit_to_the_hard_one(corral_home: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    daemon = start_daemon(corral_home, 256, hard)
    assert open_files(daemon) == (hard, hard)


def _others_can_read(path: Path) -> bool:
    """Whether a user other than the owner can list ``path`` and reach it."""
    if not path.stat().st_mode & 0o005 == 0o005:
        return False
    return all(parent.stat().st_mode & 0o001 for parent in path.parents)


@pytest.fixture
def account() -> Iterator[tuple[str, int, int, Path, Path]]:
    """A real user of its own (``useradd``), a CORRAL_HOME it owns and a directory it
    reads (pytest's tmp_path is root's alone); all removed after."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not os.access(PYTHON, os.X_OK):
        pytest.skip("needs root, useradd and /usr/bin/python3")
    name = f"crlim{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    home = Path(tempfile.mkdtemp(prefix="corral-lim-", dir="/tmp"))
    work = Path(tempfile.mkdtemp(prefix="corral-lim-work-", dir="/tmp"))
    try:
        os.chown(home, entry.pw_uid, entry.pw_gid)
        work.chmod(0o755)
        yield name, entry.pw_uid, entry.pw_gid, home, work
    finally:
        for proc in psutil.process_iter():  # what the user's daemon left, by pid
            with contextlib.suppress(psutil.Error):
                if proc.uids().real == entry.pw_uid:
                    kill_tree(proc.pid)
        subprocess.run(["userdel", name], capture_output=True, timeout=30)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def test_a_start_past_the_users_process_limit_is_refused(account) -> None:
    """RLIMIT_NPROC counts the user's tasks (root is exempt, so a user of its own)."""
    _, uid, gid, home, tmp_path = account
    # the user cannot read root's Python: /usr/bin/python3 (3.11 too) with this corral
    # (a `corral` link to the source) and the venv's packages
    path = tmp_path / "path"
    path.mkdir()
    (path / "corral").symlink_to(Path(corral.__file__).parent)
    site = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    hidden = [p for p in site if not _others_can_read(Path(p))]
    if hidden:  # a venv in a 0700 directory (mktemp -d): the user cannot import pyzmq
        pytest.skip(f"another user cannot read {hidden[0]}: make its directories 0755")
    env = {**os.environ, "CORRAL_HOME": str(home), "HOME": str(home), "CORRAL_PLUGINS": ""}
    env["PYTHONPATH"] = os.pathsep.join([str(path), *site])

    def cli(*args: str, nproc: int | None = None) -> subprocess.CompletedProcess:
        limit = (
            (lambda: resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))) if nproc else None
        )
        return subprocess.run(
            [PYTHON, "-m", "corral", *args],
            env=env, user=uid, group=gid, extra_groups=[], capture_output=True, text=True,
            timeout=60, preexec_fn=limit, cwd="/",
        )  # fmt: skip

    assert cli("ping", nproc=100).returncode == 0
    daemon = psutil.Process(int((home / "corral.pid").read_text()))
    assert daemon.uids().real == uid
    result = cli("start", "--no-wait", str(fleet(tmp_path, 40, "big")))
    assert result.returncode != 0, result.stdout
    line = result.stderr.strip()
    assert "\n" not in line and "RLIMIT_NPROC" in line and "100" in line, line
    assert "ulimit -u" in line and "LimitNPROC=" in line and "nothing was started" in line, line
    assert json.loads(cli("jlist").stdout) == [] and apps_of(daemon.pid) == []

    assert cli("start", "--no-wait", str(fleet(tmp_path, 5, "small"))).returncode == 0
    assert len(json.loads(cli("jlist").stdout)) == 5
    cli("kill")
