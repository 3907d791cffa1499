"""The spawner (corral.supervisor.spawnserver): a small process of the daemon's forks every
app, so the fork never copies the daemon's thousands of descriptors, and tells the daemon
each exit code. Real daemons, real apps, real signals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

import corral
from corral.errors import ScriptError
from corral.supervisor.spawner import CODE_LOST
from corral.testing import apps_of, wait_for
from tests.conftest import out_lines
from tests.core.test_update import jlist
from tests.core.test_update import run_cli as run_in_home

SLEEPER = "import time\nwhile True:\n    time.sleep(1)\n"


@pytest.fixture(autouse=True)
def always_spawner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The spawner forks from the first app (by default, from SPAWNER_FROM apps on)."""
    monkeypatch.setenv("CORRAL_SPAWNER", "1")


def spawner_of(daemon_pid: int) -> psutil.Process:
    [spawner] = [
        c
        for c in psutil.Process(daemon_pid).children()
        if "corral.supervisor.spawnserver" in c.cmdline()
    ]
    return spawner


def pidfds(pid: int) -> int:
    """The pidfds ``pid`` holds."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{name}") == "anon_inode:[pidfd]"
        except OSError:
            continue
    return count


def app(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(code)
    return str(path)


def test_apps_are_the_spawners_children_and_their_exit_codes_reach_the_daemon(
    pm: Any, tmp_path: Path
) -> None:
    sleeper = app(tmp_path, "sleeper.py", SLEEPER)
    quitter = app(tmp_path, "quitter.py", "import sys, time\ntime.sleep(0.3)\nsys.exit(3)\n")
    started = pm.start(sleeper, {"name": "sleeper", "instances": 3})
    spawner = spawner_of(pm.daemon_pid)
    assert sorted(p.pid for p in spawner.children()) == sorted(i.pid for i in started)
    assert sorted(p.pid for p in apps_of(pm.daemon_pid)) == sorted(i.pid for i in started)
    assert pidfds(pm.daemon_pid) == 0  # the spawner tells each exit: no pidfd per app

    pm.start(quitter, {"name": "quitter", "autorestart": False})
    wait_for(lambda: pm.describe("quitter")[0].status == "stopped", timeout=10)
    assert pm.describe("quitter")[0].exit_code == 3  # the code itself, through the spawner

    victim = started[0]
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: pm.describe(victim.pm_id)[0].pid not in (None, victim.pid), timeout=10)
    log = Path(os.environ["CORRAL_HOME"], "corral.log").read_text()
    assert f'"pid": {victim.pid}' in log and "killed by SIGKILL" in log


def test_by_default_the_daemon_forks_its_first_apps_and_the_spawner_the_rest(
    corral_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORRAL_SPAWNER")
    from corral.supervisor.system import SPAWNER_FROM

    sleeper = app(tmp_path, "sleeper.sh", "#!/bin/sh\nexec sleep 3600\n")
    os.chmod(sleeper, 0o755)
    client = corral.connect()
    try:
        client.start(sleeper, {"name": "few", "instances": 3, "interpreter": "none"})
        daemon = psutil.Process(client.daemon_pid)
        assert not [c for c in daemon.children() if "spawnserver" in " ".join(c.cmdline())]
        client.delete("few")  # a daemon of a few apps has no spawner process
        started = client.start(
            sleeper, {"name": "s", "instances": SPAWNER_FROM + 5, "interpreter": "none"}
        )
        spawned = {c.pid for c in spawner_of(client.daemon_pid).children()}
        forked = {c.pid for c in psutil.Process(client.daemon_pid).children()} - {
            spawner_of(client.daemon_pid).pid
        }
        assert {i.pid for i in started} == spawned | forked
        assert len(forked) == SPAWNER_FROM and len(spawned) == 5
        assert pidfds(client.daemon_pid) == SPAWNER_FROM
    finally:
        client.kill_daemon()
        client.disconnect()


def test_a_passed_descriptor_lands_at_the_number_its_environment_names(
    pm: Any, tmp_path: Path
) -> None:
    """The channel's fd is a number of the daemon's; the child finds it at that number,
    and a readiness message sent on it arrives (wait_ready)."""
    ready = app(
        tmp_path,
        "ready.py",
        "import os, socket, time\n"
        "fd = int(os.environ['CORRAL_CHANNEL_FD'])\n"
        "print('fd', fd, flush=True)\n"
        "s = socket.socket(fileno=fd)\n"
        's.sendall(b\'{"type": "ready"}\\n\')\n'
        's.sendall(b\'{"type": "message", "data": "ok"}\\n\')\n'
        "time.sleep(3600)\n",
    )
    [info] = pm.start(ready, {"name": "ready", "wait_ready": True, "listen_timeout": 5000})
    assert info.status == "online"  # it waited for the ready message sent on the fd
    [line] = wait_for(lambda: out_lines(info), timeout=5)
    assert int(line.split()[1]) >= 10  # a number of the daemon's, far above the spawner's


def test_a_failed_exec_is_told_as_popen_tells_it(pm: Any, tmp_path: Path) -> None:
    """An exec that fails in the spawner (a shebang naming no interpreter) errors the app
    with Popen's own words, and the daemon keeps serving."""
    script = tmp_path / "broken.sh"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    with pytest.raises(ScriptError) as failed:
        pm.start(str(script), {"name": "broken", "interpreter": "none", "autorestart": False})
    assert f"[Errno 2] No such file or directory: '{script}'" in str(failed.value)
    assert [i.name for i in pm.list()] == []  # nothing half-started is left
    [info] = pm.start(app(tmp_path, "ok.py", SLEEPER), {"name": "ok"})
    assert info.status == "online"


def test_a_killed_spawner_is_replaced_and_its_apps_stay_watched(pm: Any, tmp_path: Path) -> None:
    sleeper = app(tmp_path, "sleeper.py", SLEEPER)
    [first] = pm.start(sleeper, {"name": "first"})
    old = spawner_of(pm.daemon_pid)
    old.kill()
    wait_for(lambda: not psutil.pid_exists(old.pid) or old.status() == "zombie", timeout=5)
    # its app runs on; its exit is still seen (by pidfd now, the code lost) and restarts it
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: pm.describe("first")[0].pid not in (None, first.pid), timeout=10)
    [again] = pm.describe("first")
    assert again.status == "online" and pm.describe("first")[0].restart_time == 1
    new = spawner_of(pm.daemon_pid)
    assert new.pid != old.pid and again.pid in [c.pid for c in new.children()]
    log = Path(os.environ["CORRAL_HOME"], "corral.log").read_text()
    assert "the spawner is gone" in log and f'"code": {CODE_LOST}' in log


def test_the_spawner_ends_with_the_daemon(corral_home: Path, tmp_path: Path) -> None:
    sleeper = app(tmp_path, "sleeper.py", SLEEPER)
    client = corral.connect()
    try:
        client.start(sleeper, {"name": "one"})
        spawner = spawner_of(client.daemon_pid)
        client.kill_daemon()
    finally:
        client.disconnect()
    wait_for(lambda: not psutil.pid_exists(spawner.pid), timeout=10)


def test_without_the_spawner_the_daemon_forks_its_apps(
    corral_home: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CORRAL_SPAWNER", "0")
    sleeper = app(tmp_path, "sleeper.py", SLEEPER)
    client = corral.connect()
    try:
        [info] = client.start(sleeper, {"name": "one"})
        assert psutil.Process(info.pid).ppid() == client.daemon_pid
        assert pidfds(client.daemon_pid) == 1
    finally:
        client.kill_daemon()
        client.disconnect()


def test_an_update_hands_the_spawner_over_and_exit_codes_stay_real(
    corral_home: Path, tmp_path: Path
) -> None:
    quitter = app(
        tmp_path,
        "quitter.py",
        "import os, sys, time\n"
        "while not os.path.exists(sys.argv[1]):\n    time.sleep(0.05)\n"
        "sys.exit(7)\n",
    )
    flag = tmp_path / "go"
    started = run_in_home(
        corral_home, "start", quitter, "--name", "q", "--no-autorestart", "--", str(flag)
    )
    assert started.returncode == 0, started.stderr
    [before] = jlist(corral_home)
    updated = run_in_home(corral_home, "update", timeout=120)
    assert updated.returncode == 0, updated.stderr
    assert "kept running: q" in updated.stdout
    [after] = jlist(corral_home)
    assert after["pid"] == before["pid"]
    flag.write_text("")
    wait_for(lambda: jlist(corral_home)[0]["pm2_env"]["status"] == "stopped", timeout=10)
    assert jlist(corral_home)[0]["pm2_env"]["exit_code"] == 7


def test_a_batch_whose_app_fails_in_the_spawner_starts_nothing(pm: Any, tmp_path: Path) -> None:
    """A start of many apps asks the spawner for the next spawn before it reads the last
    answer; an exec that fails in the middle still leaves no app and no process."""
    sleeper = tmp_path / "sleeper.sh"
    sleeper.write_text("#!/bin/sh\nexec sleep 3600\n")
    sleeper.chmod(0o755)
    broken = tmp_path / "broken.sh"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    apps = [{"name": f"ok{i}", "script": str(sleeper), "interpreter": "none"} for i in range(6)]
    apps.insert(3, {"name": "broken", "script": str(broken), "interpreter": "none"})
    config = tmp_path / "apps.json"
    config.write_text(json.dumps({"apps": apps}))
    with pytest.raises(ScriptError):
        pm.start(str(config))
    assert pm.list() == []
    wait_for(lambda: [p for p in apps_of(pm.daemon_pid) if p.status() != "zombie"] == [])
    apps.pop(3)
    config.write_text(json.dumps({"apps": apps}))
    started = pm.start(str(config))
    assert [i.status for i in started] == ["online"] * 6
    assert sorted(p.pid for p in spawner_of(pm.daemon_pid).children()) == sorted(
        i.pid for i in started
    )
