"""The daemon killed with SIGKILL while it works: the next daemon takes over cleanly.

Every app carries a marker in its environment (``FAULT_MARK``), so the test
counts the real processes of each app on the whole system: after the takeover
each app runs exactly its configured number of copies, none of them left over
from the dead daemon, and the files the daemon keeps (state, dump) still parse.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import corral
from corral.errors import DaemonError
from tests.conftest import kill_pids, wait_for
from tests.core.test_cluster import Load, free_port, get
from tests.core.test_daemon import alive, daemons_of, read_state, reap

MARK = "FAULT_MARK"


def marked_processes(token: str, variable: str = MARK) -> dict[str, list[int]]:
    """``{app name: live pids}`` of every process on the system whose marker (the
    environment ``variable``) has ``token``."""
    found: dict[str, list[int]] = {}
    for proc in psutil.process_iter():
        try:
            mark = proc.environ().get(variable, "")
            if mark.startswith(token + ":") and proc.status() != psutil.STATUS_ZOMBIE:
                found.setdefault(mark.split(":", 1)[1], []).append(proc.pid)
        except psutil.Error:
            continue
    return {name: sorted(pids) for name, pids in found.items()}


def marked(token: str, name: str, **options: object) -> dict:
    return {"name": name, "env": {MARK: f"{token}:{name}"}, **options}


def sigkill_daemon(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (reap(pid), not alive(pid))[1], what=f"daemon {pid} gone")


def listed(client: corral.Client) -> dict[str, list[tuple[int, str, int | None]]]:
    """``{name: [(pm_id, status, pid), ...]}`` of what the daemon lists."""
    rows: dict[str, list[tuple[int, str, int | None]]] = {}
    for info in client.list():
        rows.setdefault(info.name, []).append((info.pm_id, info.status, info.pid))
    return rows


def settled(client: corral.Client, token: str, expected: dict[str, int]) -> Callable[[], bool]:
    """A predicate: every app online with ``expected[name]`` copies, each a marked process."""

    def check() -> bool:
        rows = listed(client)
        if {name: len(r) for name, r in rows.items()} != expected:
            return False
        if any(status != "online" for r in rows.values() for _, status, _ in r):
            return False
        running = marked_processes(token)
        return all(sorted(pid for _, _, pid in r) == running.get(n) for n, r in rows.items())

    return check


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def orphans(token: str):
    """At teardown, kill whatever still carries this test's marker (a leak the test reports)."""
    yield
    kill_pids([pid for pids in marked_processes(token).values() for pid in pids])


def test_sigkill_mid_traffic_brings_every_app_back_once(
    corral_home: Path, app_path, token: str, orphans
) -> None:
    client = corral.connect()
    port = free_port()
    web = marked(
        token,
        "web",
        exec_mode="cluster",
        instances=4,
        listen=f"127.0.0.1:{port}",
        wait_ready=True,
    )
    client.start(app_path("web.py"), web)
    client.start(app_path("sleeper.py"), marked(token, "fork-a"))
    client.start(app_path("sleeper.py"), marked(token, "fork-b"))
    expected = {"web": 4, "fork-a": 1, "fork-b": 1}
    wait_for(settled(client, token, expected), what="apps online before the kill")
    before = listed(client)
    client.dump()
    dump_path = corral_home / "dump.corral"
    dumped = dump_path.read_bytes()
    wait_for(
        lambda: (
            {e["name"] for e in (read_state(corral_home) or {"apps": []})["apps"]} == set(expected)
        ),
        what="state file names every app",
    )
    old_daemon = client.daemon_pid
    old_pids = sorted(pid for rows in before.values() for _, _, pid in rows)

    with Load(port) as load:
        wait_for(lambda: load.ok > 20, what="traffic before the kill")
        sigkill_daemon(old_daemon)
        again = corral.connect()
        assert again.daemon_pid != old_daemon
        wait_for(settled(again, token, expected), timeout=30, what="apps back once")
        recovered = load.ok
        wait_for(lambda: load.ok > recovered + 20, timeout=20, what="traffic after recovery")

    after = listed(again)
    assert {n: [(i, s) for i, s, _ in r] for n, r in after.items()} == {
        n: [(i, s) for i, s, _ in r] for n, r in before.items()
    }
    new_pids = sorted(pid for rows in after.values() for _, _, pid in rows)
    assert not set(new_pids) & set(old_pids)
    assert not any(alive(pid) for pid in old_pids)
    assert marked_processes(token) == {n: sorted(p for _, _, p in r) for n, r in after.items()}
    assert daemons_of(corral_home) == [again.daemon_pid]
    served = {get(port).split()[0] for _ in range(40)}
    assert served <= {str(pid) for _, _, pid in after["web"]}

    state = wait_for(
        lambda: (s := read_state(corral_home)) and s["daemon_pid"] == again.daemon_pid and s,
        what="state file of the new daemon",
    )
    assert {(e["name"], e["pm_id"], e["pid"]) for e in state["apps"]} == {
        (n, i, p) for n, r in after.items() for i, _, p in r
    }
    now = dump_path.read_bytes()
    assert now == dumped or {e["name"] for e in json.loads(now)["apps"]} == set(expected)
    assert {e["name"] for e in json.loads(dumped)["apps"]} == set(expected)
    again.kill_daemon()
    assert marked_processes(token) == {}


def start_in_thread(
    client: corral.Client, apps: list[dict]
) -> tuple[threading.Thread, list[object]]:
    """``client.start(apps)`` on a thread; its result (or DaemonError) lands in the list."""
    outcome: list[object] = []

    def start() -> None:
        try:
            outcome.append(client.start(apps))
        except DaemonError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread, outcome


def test_sigkill_in_the_middle_of_a_start_of_200(
    corral_home: Path, tmp_path: Path, token: str, orphans
) -> None:
    """The start hands the loop to other calls between launches, so the state file may
    be written mid-batch: the apps not launched yet are saved as launching, and the next
    daemon starts them (before, they came back stopped)."""
    names = [f"big-{i:03d}" for i in range(200)]
    script = tmp_path / "sleeper.sh"
    script.write_text("#!/bin/sh\nexec sleep 600\n")
    script.chmod(0o755)
    apps = [marked(token, n, script=str(script), interpreter="none") for n in names]
    client = corral.connect()
    old_daemon = client.daemon_pid
    thread, outcome = start_in_thread(client, apps)
    pids = corral_home / "pids"
    wait_for(lambda: pids.is_dir() and len(os.listdir(pids)) >= 60, interval=0.001, what="60")
    sigkill_daemon(old_daemon)
    thread.join(30)
    assert not thread.is_alive(), "start never returned after its daemon died"
    assert len(outcome) == 1, outcome  # the start's error (or its result, if it was over)
    again = corral.connect()
    back = listed(again)
    assert set(back) <= set(names)
    wait_for(
        settled(again, token, dict.fromkeys(back, 1)),
        timeout=60,
        what="recovered apps online, each once",
    )
    wait_for(lambda: set(marked_processes(token)) == set(back), timeout=15, what="no orphan")
    again.kill_daemon()
    assert marked_processes(token) == {}


GATED = """\
import os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while not os.path.exists(sys.argv[1]):  # ready only once the test opens the gate
    time.sleep(0.01)
import corral.child
corral.child.ready()
while True:
    time.sleep(3600)
"""


# first-child: killed right after a fork, before the state file names the child (the
# spawn journal, spawned.jsonl, does); all-recorded: after the state file has the whole batch
@pytest.mark.parametrize("moment", ["first-child", "all-recorded"])
def test_sigkill_while_a_start_of_ten_is_in_flight(
    corral_home: Path, tmp_path: Path, token: str, orphans, moment: str
) -> None:
    names = [f"batch-{i}" for i in range(10)]
    script = tmp_path / "gated.py"
    script.write_text(GATED)
    gate = tmp_path / "gate"
    apps = [marked(token, n, script=str(script), args=[str(gate)], wait_ready=True) for n in names]
    client = corral.connect()
    old_daemon = client.daemon_pid
    thread, outcome = start_in_thread(client, apps)
    if moment == "first-child":
        # the daemon writes a pid file right after each spawn
        wait_for(lambda: os.listdir(corral_home / "pids"), interval=0.0005, what="a spawn")
    else:
        wait_for(
            lambda: [e["name"] for e in (read_state(corral_home) or {"apps": []})["apps"]] == names,
            what="the whole batch in the state file",
        )
    sigkill_daemon(old_daemon)
    thread.join(30)
    assert not thread.is_alive(), "start never returned after its daemon died"
    # the gate is shut, so the start was waiting for readiness: it cannot have succeeded
    assert len(outcome) == 1 and isinstance(outcome[0], DaemonError), outcome

    gate.touch()
    again = corral.connect()
    back = listed(again)
    assert set(back) <= set(names)
    if moment == "all-recorded":
        assert set(back) == set(names)
    # what the new daemon knows runs once; what it does not know does not run at all
    wait_for(
        settled(again, token, dict.fromkeys(back, 1)),
        timeout=30,
        what="recovered apps online, each once",
    )
    wait_for(
        lambda: set(marked_processes(token)) == set(back),
        timeout=8,
        what=f"no orphan of the dead daemon (it knows {sorted(back)})",
    )
    missing = [app for app in apps if app["name"] not in back]
    if missing:
        again.start(missing)
    wait_for(settled(again, token, dict.fromkeys(names, 1)), timeout=30, what="all ten once")
    again.kill_daemon()
    assert marked_processes(token) == {}
