"""Cluster mode: one socket shared by every instance, rolling reload, rollback, scale."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

import psutil
import pytest

from corral.errors import OptionError, StateError
from tests.conftest import out_lines, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as reply:
        return reply.read().decode()


def start_web(pm, app_path, port: int, instances: int = 4, **extra) -> list:
    options = {
        "name": "web",
        "exec_mode": "cluster",
        "instances": instances,
        "listen": f"127.0.0.1:{port}",
        "wait_ready": True,
        **extra,
    }
    return pm.start(app_path("web.py"), options)


class Load:
    """Requests in a loop on another thread; counts what failed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failed: list[str] = []
        self.pids: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pids.add(get(self.port).split()[0])
                self.ok += 1
            except (OSError, urllib.error.URLError) as exc:
                self.failed.append(repr(exc))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_instances_share_one_socket(pm, app_path):
    port = free_port()
    apps = start_web(pm, app_path, port)
    assert [a.status for a in apps] == ["online"] * 4
    entry = apps[0].to_dict()["pm2_env"]
    assert entry["exec_mode"] == "cluster_mode" and entry["instances"] == 4
    pids = {str(a.pid) for a in apps}
    served = wait_for(lambda: pids <= {get(port).split()[0] for _ in range(40)} or None, 20)
    assert served
    # each instance got fd 3 with LISTEN_PID set to its own pid, and its index
    for info in apps:
        env = psutil.Process(info.pid).environ()
        assert env["LISTEN_PID"] == str(info.pid) and env["LISTEN_FDS"] == "1"
        assert env["PORT"] == str(port) and env["CORRAL_INSTANCE"] == str(info.pm_id)


def test_reload_under_load_drops_nothing(pm, app_path):
    port = free_port()
    apps = start_web(pm, app_path, port)
    before = {a.pid for a in apps}
    with Load(port) as load:
        wait_for(lambda: load.ok > 20)
        seen = set()
        for _ in range(3):
            reloaded = pm.reload("web")
            seen |= {a.pid for a in reloaded}
            assert [a.status for a in reloaded] == ["online"] * 4
        done = load.ok
        wait_for(lambda: load.ok > done + 20)
    assert load.failed == []
    assert not (seen & before)  # every pid changed
    assert all(a.restart_time == 3 for a in pm.describe("web"))
    assert load.ok > 100


def test_a_new_version_that_crashes_is_rolled_back(pm, app_path):
    port = free_port()
    apps = start_web(pm, app_path, port, instances=2)
    old = {a.pid for a in apps}
    with Load(port) as load:
        wait_for(lambda: load.ok > 10)
        with pytest.raises(StateError, match=r"exited .*before ready.*still serving"):
            pm.reload("web", options={"args": ["--crash"]})
        done = load.ok
        wait_for(lambda: load.ok > done + 10)
    assert load.failed == []
    now = pm.describe("web")
    assert {a.pid for a in now} == old and [a.status for a in now] == ["online"] * 2
    assert now[0].options["args"] == []  # the old version's options stay too


def test_not_ready_in_time_is_rolled_back(pm, app_path):
    port = free_port()
    start_web(pm, app_path, port, instances=1, listen_timeout=500)
    old = pm.describe("web")[0].pid
    with pytest.raises(StateError, match="not ready within listen_timeout"):
        pm.reload("web", options={"args": ["--no-ready"]})
    assert pm.describe("web")[0].pid == old
    assert get(port).split()[0] == str(old)


def test_graceful_reload_sends_shutdown_first(pm, app_path):
    port = free_port()
    apps = start_web(pm, app_path, port, instances=1, kill_timeout=5000)
    old = apps[0]
    started = time.monotonic()
    pm.graceful_reload("web")
    # the app stops on the message, long before kill_timeout would send SIGINT
    assert time.monotonic() - started < 4
    assert f"stopped {old.pid}" in out_lines(old)


def test_scale_up_and_down(pm, app_path):
    port = free_port()
    start_web(pm, app_path, port, instances=2)
    assert len(pm.scale("web", 4)) == 4
    assert len(pm.scale("web", "-3")) == 1
    assert len(pm.scale("web", "+1")) == 2
    assert [a.status for a in pm.describe("web")] == ["online"] * 2
    with pytest.raises(OptionError, match="scale needs a number"):
        pm.scale("web", "lots")


def test_bad_listen_address(pm, app_path):
    with pytest.raises(OptionError, match="listen"):
        pm.start(app_path("web.py"), {"listen": "nowhere", "exec_mode": "cluster"})
    assert pm.list() == []


def test_port_in_use_is_an_error(pm, app_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OptionError, match=r"cannot listen on 127\.0\.0\.1:\d+: Address"):
            start_web(pm, app_path, port, instances=1)
    assert pm.list() == []


def test_cli_cluster_commands(corral_home, app_path):
    import subprocess
    import sys

    port = free_port()

    def corral(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        corral(
            "start", app_path("web.py"), "-n", "web", "-x", "cluster", "-i", "2",
            "--listen", f"127.0.0.1:{port}", "--wait-ready",
        )  # fmt: skip
        corral("reload", "web", "--parallel", "2")
        corral("scale", "web", "+1")
        corral("graceful-reload", "web")
        import json

        entries = json.loads(corral("jlist"))
        assert [e["pm2_env"]["status"] for e in entries] == ["online"] * 3
        assert [e["pm2_env"]["restart_time"] for e in entries] == [2, 2, 1]
        assert get(port)
    finally:
        subprocess.run([sys.executable, "-m", "corral", "kill"], capture_output=True, timeout=60)


def test_a_stopped_app_refuses_connections_and_a_restart_serves_again(pm, app_path):
    port = free_port()
    start_web(pm, app_path, port, instances=2)
    pm.stop("web")
    with pytest.raises(urllib.error.URLError):
        get(port, timeout=2)
    pm.restart("web")
    wait_for(lambda: [a.status for a in pm.describe("web")] == ["online"] * 2)
    assert get(port)
