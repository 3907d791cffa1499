"""Status as PM2 shows it, readiness beside it (issue 12, points 3 and 7).

An instance without ``wait_ready`` is ``online`` once spawned; with ``wait_ready``
it is ``launching`` until it is ready or ``listen_timeout`` passes. Readiness
(``ready``, ``ready_by``, ``ready_at`` in pm2_env) tells what the app said;
``start`` with ``wait_ready``, ``restart`` and both reloads wait for it.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from corral import paths
from corral.daemon.state import load_state
from corral.errors import OptionError, StateError
from tests.conftest import APPS, python_app, wait_for

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

# says ready (corral.child.ready(): the channel's "ready", PM2's process.send('ready'))
# after argv[1] seconds; argv[2] == "never": never
READY_AFTER = """
import sys, time
import corral.child
delay = float(sys.argv[1]) if len(sys.argv) > 1 else 0
if sys.argv[2:] != ["never"]:
    time.sleep(delay)
    corral.child.ready()
print("up", flush=True)
time.sleep(600)
"""

SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(600)\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ready_app(tmp_path):
    return python_app(tmp_path, "ready_after.py", READY_AFTER)


@pytest.fixture
def sleeper(tmp_path):
    return python_app(tmp_path, "sleeper.py", SLEEPER)


def readiness(info) -> tuple:
    return info.ready, info.ready_by


def all_of(infos: list, test) -> list | None:
    """``infos`` when ``test`` holds for each, else None (for wait_for)."""
    return infos if infos and all(test(i) for i in infos) else None


# -- status: online at spawn without wait_ready ---------------------------------


def test_a_listen_app_is_online_when_start_returns_and_ready_apart(pm, sleeper):
    """A shared socket and no signal: PM2 shows it online at once; corral said
    `launching` until listen_timeout. Readiness waits for the signal or the bound."""
    options = {"name": "quiet", "listen": f"127.0.0.1:{free_port()}", "listen_timeout": 1500}
    options.update(exec_mode="cluster", instances=2)
    started = pm.start(sleeper, options)
    assert [i.status for i in started] == ["online"] * 2  # no waiting: the start's own answer
    assert [readiness(i) for i in started] == [(False, None)] * 2
    now = pm.describe("quiet")
    assert [i.status for i in now] == ["online"] * 2
    after = wait_for(lambda: all_of(pm.describe("quiet"), lambda i: i.ready_by), 10)
    assert [readiness(i) for i in after] == [(False, "listen_timeout")] * 2
    assert all(i.ready_at >= i.pm_uptime + 1400 for i in after)
    assert [i.status for i in after] == ["online"] * 2


def test_a_fork_app_is_online_and_ready_at_spawn(pm, sleeper):
    (info,) = pm.start(sleeper, {"name": "plain"})
    assert info.status == "online"
    assert readiness(info) == (True, "spawned")
    assert info.pm2_env["ready_at"] >= info.pm_uptime
    # corral's own fields stay out of the app's environment
    assert "ready" not in info.env and "ready_by" not in info.env


@needs_node
def test_a_node_cluster_app_is_online_at_once_and_ready_when_listening(pm):
    port = free_port()
    options = {"name": "nweb", "exec_mode": "cluster", "instances": 2, "port": port}
    started = pm.start(str(APPS / "http_pid.js"), options)
    assert [i.status for i in started] == ["online"] * 2  # PM2: online at the worker's start
    listening = wait_for(lambda: all_of(pm.describe("nweb"), lambda i: i.ready), 10)
    assert {i.ready_by for i in listening} == {"listening"}
    assert all(i.ready_at < i.pm_uptime + 3000 for i in listening)  # not listen_timeout


# -- wait_ready: launching until ready ----------------------------------------------


def test_wait_ready_is_launching_until_the_ready_message(pm, ready_app):
    seen: list = []
    options = {"name": "slow", "wait_ready": True, "listen_timeout": 10000, "args": ["1"]}
    starting = threading.Thread(target=lambda: seen.append(pm.start(ready_app, options)))
    begun = time.monotonic()
    starting.start()
    try:
        early = wait_for(lambda: pm.describe("slow") if pm.list() else None, 10)
        assert early[0].status == "launching" and readiness(early[0]) == (False, None)
    finally:
        starting.join(20)
    elapsed = time.monotonic() - begun
    (info,) = seen[0]
    assert info.status == "online" and readiness(info) == (True, "ready message")
    assert 0.9 <= elapsed < 8, elapsed
    assert info.ready_at - info.pm_uptime >= 900


def test_wait_ready_without_a_signal_goes_online_at_listen_timeout(pm, ready_app):
    options = {"name": "mute", "wait_ready": True, "listen_timeout": 1200}
    begun = time.monotonic()
    (info,) = pm.start(ready_app, {**options, "args": ["0", "never"]})
    assert time.monotonic() - begun >= 1.1
    assert info.status == "online"  # as PM2's God.js: online at listen_timeout
    assert readiness(info) == (False, "listen_timeout")


def test_sd_notify_makes_it_ready(pm):
    options = {"name": "notify", "wait_ready": True, "listen_timeout": 10000}
    (info,) = pm.start(str(APPS / "notify_ready.sh"), options)
    assert info.status == "online"
    assert readiness(info) == (True, "sd_notify READY=1")


def test_describe_shows_readiness(pm, ready_app):
    from corral.cli.describe import describe_rows

    pm.start(ready_app, {"name": "shown", "wait_ready": True, "args": ["0"]})
    rows = dict(describe_rows(pm.describe("shown")[0], int(time.time() * 1000)))
    assert rows["ready"].startswith("yes (ready message, ")
    pm.stop("shown")
    rows = dict(describe_rows(pm.describe("shown")[0], int(time.time() * 1000)))
    assert rows["ready"] == "-"


# -- restart and reload wait for readiness -------------------------------------------


@pytest.mark.parametrize("verb", ["restart", "reload", "graceful_reload"])
def test_restart_and_fork_reload_wait_for_the_ready_message(pm, ready_app, verb):
    options = {"name": "late", "wait_ready": True, "listen_timeout": 10000, "args": ["1"]}
    (before,) = pm.start(ready_app, options)
    begun = time.monotonic()
    (after,) = getattr(pm, verb)("late")
    elapsed = time.monotonic() - begun
    assert 0.9 <= elapsed < 8, elapsed  # the app says ready 1 s after its spawn
    assert after.pid != before.pid
    assert after.status == "online" and readiness(after) == (True, "ready message")


@pytest.mark.parametrize("verb", ["restart", "reload"])
def test_restart_and_fork_reload_wait_until_listen_timeout(pm, ready_app, verb):
    options = {"name": "silent", "wait_ready": True, "listen_timeout": 1500}
    pm.start(ready_app, {**options, "args": ["0", "never"]})
    begun = time.monotonic()
    (after,) = getattr(pm, verb)("silent")
    elapsed = time.monotonic() - begun
    assert 1.4 <= elapsed < 8, elapsed
    assert after.status == "online" and readiness(after) == (False, "listen_timeout")


def test_a_rolling_reload_waits_for_the_ready_message(pm, ready_app):
    options = {"name": "roll", "exec_mode": "cluster", "instances": 2, "wait_ready": True}
    options.update(listen=f"127.0.0.1:{free_port()}", listen_timeout=10000, args=["1"])
    before = pm.start(ready_app, options)
    begun = time.monotonic()
    after = pm.reload("roll")
    assert time.monotonic() - begun >= 1.8  # one instance at a time, each ready after 1 s
    assert not {i.pid for i in after} & {i.pid for i in before}
    assert [readiness(i) for i in after] == [(True, "ready message")] * 2


def test_a_rolling_reload_without_wait_ready_stays_online(pm, sleeper):
    """PM2 shows the new worker online at once; corral showed `launching` until the
    new instance's readiness (here: listen_timeout, 1 s)."""
    options = {"name": "steady", "exec_mode": "cluster", "listen": f"127.0.0.1:{free_port()}"}
    options["listen_timeout"] = 1000
    pm.start(sleeper, options)
    statuses: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            statuses.update(i.status for i in pm.describe("steady"))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        (after,) = pm.reload("steady")
    finally:
        done.set()
        watcher.join(10)
    assert statuses == {"online"}
    assert readiness(after) == (False, "listen_timeout")
    # no status change, but the state file (what a daemon killed now recovers) has the new pid
    state = lambda: load_state(paths.state_file(pm.home)) or {"apps": []}  # noqa: E731
    wait_for(lambda: [a["pid"] for a in state()["apps"]] == [after.pid], 5)


# -- not ready in time: roll back (default) or go on (PM2) ---------------------------


def test_a_reload_not_ready_in_time_rolls_back_by_default(pm, ready_app):
    options = {"name": "guarded", "exec_mode": "cluster", "wait_ready": True, "args": ["0"]}
    options.update(listen=f"127.0.0.1:{free_port()}", listen_timeout=800)
    (before,) = pm.start(ready_app, options)
    with pytest.raises(StateError, match=r"not ready within listen_timeout.*on_listen_timeout"):
        pm.reload("guarded", options={"args": ["0", "never"]})
    (now,) = pm.describe("guarded")
    assert now.pid == before.pid and now.status == "online"
    assert readiness(now) == (True, "ready message")  # the old instance's, still serving
    assert now.options["args"] == ["0"]


def test_on_listen_timeout_continue_goes_on_as_pm2(pm, ready_app):
    options = {"name": "bold", "exec_mode": "cluster", "wait_ready": True, "args": ["0"]}
    options.update(listen=f"127.0.0.1:{free_port()}", listen_timeout=800)
    options["on_listen_timeout"] = "continue"
    (before,) = pm.start(ready_app, options)
    begun = time.monotonic()
    (after,) = pm.reload("bold", options={"args": ["0", "never"]})
    assert time.monotonic() - begun >= 0.7
    assert after.pid != before.pid and after.status == "online"
    assert readiness(after) == (False, "listen_timeout")
    assert wait_for(lambda: not _alive(before.pid), 10)


def test_on_listen_timeout_takes_only_its_two_words(pm, sleeper):
    with pytest.raises(OptionError, match="on_listen_timeout must be one of"):
        pm.start(sleeper, {"name": "typo", "on_listen_timeout": "ignore"})
    assert pm.list() == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False
