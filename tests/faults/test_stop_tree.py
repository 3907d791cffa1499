"""Stopping what will not stop: deaf children and the grandchildren they leave behind.

A child that ignores its stop signal gets SIGKILL once ``kill_timeout`` has
passed, never before (the daemon's own ``stop`` and ``exit`` event times are
the measure). A child that forks grandchildren, one of them a double-forked
``setsid`` daemon, leaves none of them alive after ``stop``, ``delete`` or
``kill_daemon``, whether it keeps running or has exited first; one whose
environment is empty (so only its process group ties it to the app) is still
reached after its parent exited. Grandchildren write their own pids to a file,
so the test knows them all.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

import corral
from corral.testing import wait_for_event
from tests.conftest import python_app, wait_for
from tests.core.test_daemon import alive

KILL_TIMEOUT_MS = 500


@pytest.fixture(autouse=True, params=["cgroups", "no-cgroups"])
def cgroups(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test both ways: each child in a cgroup of its own (in-process daemons too, where
    cgroups can be made), and process groups with the /proc scan (``CORRAL_CGROUPS=0``)."""
    monkeypatch.setenv("CORRAL_CGROUPS", "1" if request.param == "cgroups" else "0")


DEAF = """\
import signal, sys, time
for name in sys.argv[1:]:
    signal.signal(getattr(signal, name), signal.SIG_IGN)
print("deaf", flush=True)
while True:
    time.sleep(3600)
"""


@pytest.mark.parametrize("action", ["stop", "restart", "delete"])
@pytest.mark.parametrize("kill_signal", ["SIGINT", "SIGTERM"])
def test_a_deaf_child_is_sigkilled_after_kill_timeout(
    corral_daemon, tmp_path: Path, action: str, kill_signal: str
) -> None:
    pm = corral_daemon()
    script = python_app(tmp_path, "deaf.py", DEAF)
    options = {"name": "deaf", "args": [kill_signal], "kill_signal": kill_signal}
    info = pm.start(script, {**options, "kill_timeout": KILL_TIMEOUT_MS})[0]
    wait_for_event(pm, "online", "deaf")
    wait_for(lambda: Path(info.out_log).read_text().startswith("deaf"), what="handler set")
    since = pm.events.mark()

    getattr(pm, action)("deaf")
    stopped = wait_for_event(pm, "stop", "deaf", since=since)
    exited = wait_for_event(pm, "exit", "deaf", since=since)
    assert exited.process["exit_code"] == -signal.SIGKILL, exited.reason
    # a correctness bound, not a speed goal: SIGKILL never comes before kill_timeout
    assert exited.at - stopped.at >= KILL_TIMEOUT_MS, (stopped.at, exited.at)
    assert not alive(info.pid)
    if action == "restart":
        again = pm.describe("deaf")[0]
        assert again.status == "online" and again.pid != info.pid


def test_a_child_that_obeys_is_not_sigkilled(corral_daemon, tmp_path: Path) -> None:
    """The other side of the bound: a child that exits on SIGINT is never SIGKILLed."""
    pm = corral_daemon()
    script = python_app(tmp_path, "deaf.py", DEAF)  # deaf to nothing
    info = pm.start(script, {"name": "obeys", "kill_timeout": 5000})[0]
    wait_for(lambda: Path(info.out_log).read_text().startswith("deaf"), what="app up")
    (stopped,) = pm.stop("obeys")
    assert stopped.exit_code == -signal.SIGINT
    assert not alive(info.pid)


# -- grandchildren -------------------------------------------------------------

FAMILY = """\
import os, signal, sys, time

record, mode = sys.argv[1], sys.argv[2]


def note(kind):
    with open(record, "a") as f:
        f.write(f"{kind} {os.getpid()}\\n")


def stay(kind):
    try:
        if kind == "daemon":  # the classic double fork: setsid, fork again, parent leaves
            os.setsid()
            if os.fork():
                os._exit(0)
        if kind != "plain":
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note(kind)
        while True:
            time.sleep(3600)
    finally:
        os._exit(0)


for kind in ("plain", "deaf", "daemon"):
    pid = os.fork()
    if pid == 0:
        stay(kind)
    if kind == "daemon":
        os.waitpid(pid, 0)  # the middle of the double fork, gone at once
while len(open(record).read().splitlines()) < 3:
    time.sleep(0.01)
print("family", flush=True)
if mode == "exit":
    sys.exit(0)
while True:
    time.sleep(3600)
"""

# the double-forked one is found by the slot's unique_id in its environment; the
# groups of an exited main process are remembered at its exit
FAMILIES = [
    pytest.param("stay", ("plain", "deaf"), id="running-in-group"),
    pytest.param("stay", ("daemon",), id="running-double-forked"),
    pytest.param("exit", ("plain", "deaf", "daemon"), id="exited"),
]


def grandchildren(record: Path) -> dict[str, int]:
    """``{kind: pid}`` as the grandchildren wrote them, once all three did."""

    def read() -> dict[str, int] | None:
        try:
            lines = record.read_text().splitlines()
        except FileNotFoundError:
            return None
        found = {kind: int(pid) for kind, pid in (line.split() for line in lines)}
        return found if len(found) == 3 else None

    return wait_for(read, what="three grandchildren recorded")


@pytest.mark.parametrize("action", ["stop", "delete", "kill_daemon"])
@pytest.mark.parametrize(("mode", "kinds"), FAMILIES)
def test_no_grandchild_survives(
    corral_home: Path, tmp_path: Path, action: str, mode: str, kinds: tuple[str, ...]
) -> None:
    """``kinds`` are the grandchildren this case checks: the plain and the deaf one stay in
    the app's process group, the double-forked one left it and its parent."""
    record = tmp_path / "family.txt"
    script = python_app(tmp_path, "family.py", FAMILY)
    client = corral.connect()
    options = {"name": "family", "args": [str(record), mode], "kill_timeout": KILL_TIMEOUT_MS}
    if mode == "exit":
        options["autorestart"] = False  # one generation of grandchildren, then stopped
    info = client.start(script, options)[0]
    family = grandchildren(record)
    checked = {kind: family[kind] for kind in kinds}
    try:
        assert all(alive(pid) for pid in family.values())
        if mode == "exit":
            wait_for(lambda: client.describe("family")[0].status == "stopped", what="exited")
            assert not alive(info.pid)
        if action == "kill_daemon":
            client.kill_daemon()
        else:
            getattr(client, action)("family")
        # stop and delete return once the tree is gone; a grace for zombies to be reaped
        wait_for(
            lambda: not any(alive(pid) for pid in checked.values()),
            timeout=KILL_TIMEOUT_MS / 1000 * 4,
            what=f"no grandchild alive after {action} (left: "
            f"{ {k: p for k, p in checked.items() if alive(p)} })",
        )
    finally:
        for pid in family.values():  # by pid; orphans of init, so nothing of ours to wait for
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if action != "kill_daemon":
            client.kill_daemon()


BARE = """\
import subprocess, sys

# a deaf grandchild with an empty environment: no unique_id to find it by, only its group
DEAF = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(3600)"
grandchild = subprocess.Popen([sys.executable, "-c", DEAF], env={})
with open(sys.argv[1], "a") as f:
    f.write(f"{grandchild.pid}\\n")
"""


@pytest.mark.parametrize("action", ["stop", "restart", "delete"])
def test_the_group_of_an_exited_child_is_remembered(
    corral_daemon, tmp_path: Path, action: str
) -> None:
    """The main process exits and leaves a grandchild nothing but its process group ties to
    the app: a later stop, restart or delete still reaches it (SIGKILL, as it is deaf)."""
    pm = corral_daemon()
    record = tmp_path / "bare.txt"
    script = python_app(tmp_path, "bare.py", BARE)
    options = {"name": "bare", "args": [str(record)], "kill_timeout": KILL_TIMEOUT_MS}
    info = pm.start(script, {**options, "autorestart": False})[0]
    wait_for(lambda: pm.describe("bare")[0].status == "stopped", what="main exited")
    grandchild = int(record.read_text().split()[0])
    try:
        assert alive(grandchild)
        assert os.getpgid(grandchild) == info.pid  # its group is the exited child's
        assert Path(f"/proc/{grandchild}/environ").read_bytes() == b""
        getattr(pm, action)("bare")
        # stop, restart and delete return once the leftovers are gone; a grace for the reaper
        wait_for(lambda: not alive(grandchild), timeout=5, what=f"grandchild gone after {action}")
    finally:
        for pid in map(int, record.read_text().split()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_stop_reaches_only_its_own_app(corral_home: Path, tmp_path: Path) -> None:
    """Strays are told apart by their app's unique_id: stopping one app leaves another's
    double-forked grandchild (and the rest of its family) running."""
    script = python_app(tmp_path, "family.py", FAMILY)
    client = corral.connect()
    families = {}
    try:
        for name in ("one", "other"):
            record = tmp_path / f"{name}.txt"
            options = {"name": name, "args": [str(record), "stay"]}
            client.start(script, {**options, "kill_timeout": KILL_TIMEOUT_MS})
            families[name] = grandchildren(record)
        client.stop("one")
        wait_for(
            lambda: not any(alive(pid) for pid in families["one"].values()),
            timeout=KILL_TIMEOUT_MS / 1000 * 4,
            what="the stopped app's family gone",
        )
        assert all(alive(pid) for pid in families["other"].values()), families["other"]
        assert client.describe("other")[0].status == "online"
    finally:
        client.kill_daemon()
        for pid in (pid for family in families.values() for pid in family.values()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


PARENT_OF_A_DEAF_CHILD = """\
import os, signal, sys, time
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        time.sleep(3600)
open(sys.argv[1], "w").write(str(pid))
while True:
    time.sleep(3600)
"""


def test_stopped_means_nothing_of_the_app_runs(corral_daemon, tmp_path: Path) -> None:
    """The main process obeys SIGINT at once, its child ignores it until SIGKILL after
    kill_timeout: the slot stays "stopping" until that child is gone too, so "stopped"
    is never shown (to another client, in a restart's middle) while any of it runs.
    Failed before: "stopped" for the whole kill_timeout with the child alive."""
    pm = corral_daemon()
    script = python_app(tmp_path, "parent.py", PARENT_OF_A_DEAF_CHILD)
    marker = tmp_path / "child.pid"
    pm.start(script, {"name": "family", "args": [str(marker)], "kill_timeout": 1500})
    wait_for(lambda: marker.exists() and marker.read_text(), what="the child's pid")
    child = int(marker.read_text())
    watcher = corral.connect()
    try:
        stopping = threading.Thread(target=pm.stop, args=("family",))
        stopping.start()
        seen = []
        while stopping.is_alive():
            status = watcher.describe("family")[0].status
            seen.append(status)
            if status == "stopped":
                assert not alive(child), f"stopped while pid {child} of the app runs: {seen}"
        stopping.join()
        assert "stopping" in seen and not alive(child)
        assert watcher.describe("family")[0].status == "stopped"
    finally:
        watcher.disconnect()
