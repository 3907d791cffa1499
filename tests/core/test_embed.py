"""examples/embed.py: the core inside another program, with plugins and a hook object."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import PY, kill_pids, wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
APP_SCRIPTS = (str(EXAMPLES / "web.py"), str(EXAMPLES / "worker.py"))


class Run:
    """examples/embed.py as a subprocess, its output gathered line by line on a thread."""

    def __init__(self, home: Path, *args: str) -> None:
        self.popen = subprocess.Popen(
            [PY, str(EXAMPLES / "embed.py"), "--home", str(home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    def finish(self, timeout: float = 30) -> str:
        self.popen.wait(timeout)
        self._reader.join(timeout)
        return "\n".join(self.lines)

    def pids(self) -> set[int]:
        return {int(pid) for line in self.lines for pid in re.findall(r"\bpid (\d+)", line)}


@pytest.fixture
def run(corral_home: Path) -> Iterator[object]:
    runs: list[Run] = []

    def start(*args: str) -> Run:
        runs.append(Run(corral_home, *args))
        return runs[-1]

    yield start
    for r in runs:  # whatever happened, nothing this test started outlives it
        if r.popen.poll() is None:
            r.popen.kill()
            r.popen.wait(10)
        kill_pids(sorted(r.pids()))


def still_running(pids: set[int]) -> list[int]:
    """The pids that are still one of the example apps (a reused pid is someone else)."""
    alive = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE and any(
                script in process.cmdline() for script in APP_SCRIPTS
            ):
                alive.append(pid)
    return alive


def test_runs_for_the_given_seconds_and_stops_everything(run):
    r = run("--seconds", "3")
    out = r.finish()
    assert r.popen.returncode == 0, out
    for expected in (
        "ready",
        "web is online (pid ",
        "web answered: hello from pid ",
        "worker is online (pid ",
        "worker did 3 jobs: restarting it once",
        "event: worker restart",
        "event: web delete",
        "event: worker delete",
    ):
        assert expected in out
    assert out.splitlines()[-1] == "stopped cleanly"
    assert out.count("worker did 3 jobs") == 1
    # web, the first worker and the restarted one
    assert len(r.pids()) == 3, out
    assert still_running(r.pids()) == []


def test_ctrl_c_stops_everything(run):
    r = run()
    wait_for(lambda: "ready" in r.lines, what="ready")
    r.popen.send_signal(signal.SIGINT)
    out = r.finish()
    assert r.popen.returncode == 0, out
    assert "interrupted" in out
    assert "event: web exit" in out
    assert out.splitlines()[-1] == "stopped cleanly"
    assert len(r.pids()) >= 2, out
    assert still_running(r.pids()) == []
