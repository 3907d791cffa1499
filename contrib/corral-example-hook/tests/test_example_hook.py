"""The example hook in an in-process daemon: a real app, a real events.log."""

from __future__ import annotations

import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pytest

import corral
import corral_example_hook

IDLE = "import time\nwhile True:\n    time.sleep(60)\n"


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_line(path: Path, line: str, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while line not in lines(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} not in {path} within {timeout} s: {lines(path)}")
        time.sleep(0.01)
    return lines(path)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # short: the daemon's unix sockets live in the home, and their paths are limited to ~100 bytes
    path = Path(tempfile.mkdtemp(prefix="corral-hook-", dir="/tmp"))
    monkeypatch.setenv("CORRAL_HOME", str(path))
    (tmp_path / "idle.py").write_text(IDLE)
    return path


def run_app(home: Path, plugin: object, script: Path) -> list[str]:
    """Start, stop and delete one app; the events.log lines it left."""
    log = home / "events.log"
    with corral.connect(home, no_daemon=True, plugins=[plugin]) as pm:
        pm.start(str(script), {"name": "idle", "interpreter": sys.executable})
        wait_for_line(log, "idle: online")
        pm.stop("idle")
        wait_for_line(log, "idle: stop")
        pm.delete("idle")
        return wait_for_line(log, "idle: delete")


def test_one_line_per_event(home, tmp_path):
    written = run_app(home, corral_example_hook, tmp_path / "idle.py")
    assert written[0] == "idle: online"
    assert {"idle: start", "idle: stop", "idle: exit", "idle: delete"} <= set(written)
    assert all(line.startswith("idle: ") for line in written)


@pytest.mark.skipif(
    "example_hook" not in {ep.name for ep in metadata.entry_points(group="corral")},
    reason="pip install ./contrib/corral-example-hook first",
)
def test_loaded_by_its_entry_point_name(home, tmp_path):
    written = run_app(home, "example_hook", tmp_path / "idle.py")
    assert "idle: online" in written
