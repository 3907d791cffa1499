"""Fixtures shared by every test: a private CORRAL_HOME, real daemons, cleanup by pid."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

APPS = Path(__file__).parent / "apps"

# pytester runs the plugin-author tests of corral.testing (tests/core/test_testing.py)
pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # corral.testing arrives through its pytest11 entry point once that is installed;
    # listing it in pytest_plugins too would register it twice, which pytest refuses
    import corral.testing

    if not config.pluginmanager.is_registered(corral.testing):
        config.pluginmanager.register(corral.testing, "corral.testing")


def wait_for(
    predicate: Callable[[], object],
    timeout: float = 15.0,
    interval: float = 0.01,
    what: str = "condition",
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s (last value: {last!r})")


def kill_pids(pids: list[int]) -> None:
    """SIGKILL each pid with its descendants, for processes no fixture knows about."""
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for p in family:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(family, timeout=5)


def out_lines(info: object) -> list[str]:
    """The lines an app wrote to its out log so far."""
    path = info.out_log  # type: ignore[attr-defined]
    assert path
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


def _daemon_pid(home: Path) -> int | None:
    try:
        return int((home / "corral.pid").read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def corral_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private home (unix socket paths are limited to ~100 bytes)."""
    home = Path(tempfile.mkdtemp(prefix="corral-", dir="/tmp"))
    monkeypatch.setenv("CORRAL_HOME", str(home))
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    monkeypatch.delenv("CORRAL_DUMP_FILE", raising=False)
    started = {p.pid for p in psutil.Process().children(recursive=True)}
    yield home
    # every daemon that served this home, and everything it started, by pid
    pid = _daemon_pid(home)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).wait(5)
        kill_pids([pid])
    for child in psutil.Process().children(recursive=True):
        if child.pid not in started:
            kill_pids([child.pid])
    _kill_recorded_apps(home)
    shutil.rmtree(home, ignore_errors=True)


def _kill_recorded_apps(home: Path) -> None:
    """Apps of a daemon a test killed with SIGKILL are recorded in its state file."""
    import json

    with contextlib.suppress(OSError, ValueError):
        for entry in json.loads((home / "state.json").read_text()).get("apps", []):
            if entry.get("pid"):
                kill_pids([int(entry["pid"])])


@pytest.fixture
def pm(corral_home: Path) -> Iterator[object]:
    """A client of a real detached daemon on ``corral_home``; killed at teardown."""
    import corral

    client = corral.connect()
    yield client
    with contextlib.suppress(Exception):
        client.kill_daemon()
    client.disconnect()


@pytest.fixture
def app_path() -> Callable[[str], str]:
    def path(name: str) -> str:
        return str(APPS / name)

    return path


def python_app(tmp: Path, name: str, body: str) -> str:
    """Write a small Python app into ``tmp`` and return its path."""
    path = tmp / name
    path.write_text(body)
    return str(path)


PY = sys.executable
