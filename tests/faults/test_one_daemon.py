"""One daemon per CORRAL_HOME, whatever happens to the clients that start it.

The daemon holds ``daemon.lock`` for its whole life; a client starts a daemon
only when none holds it, never beside one that holds it and does not answer
(stopped or stalled). Each test counts the real processes on the system: the
daemons whose environment names the home, and the apps by a marker in theirs.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

import corral
from corral.client.launcher import ensure_daemon
from corral.errors import DaemonError
from corral.testing import kill_tree, wait_for
from tests.core.test_daemon import daemons_of, processes_of, reap
from tests.faults.test_daemon_kill import marked, marked_processes

PY = sys.executable


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def every_process(corral_home: Path, token: str) -> Iterator[None]:
    """At teardown, SIGKILL by pid whatever runs for this home: every daemon (a test may
    have left two), their children, and the apps carrying this test's marker."""
    yield
    for pid in processes_of(corral_home, lambda _: True):
        if pid == os.getpid():
            continue
        with_cont(pid)
        kill_tree(pid)
    for pids in marked_processes(token).values():
        for pid in pids:
            kill_tree(pid)


def with_cont(pid: int) -> None:
    """SIGCONT, so a stopped process can stop its own way (SIGKILL needs none)."""
    try:
        os.kill(pid, signal.SIGCONT)
    except OSError:
        pass


def cli(*args: str, **kw: object) -> subprocess.Popen:
    """``corral ARGS`` as a terminal would run it: the leader of its own process group,
    so a Ctrl-C (SIGINT to the whole group) is what the test sends."""
    return subprocess.Popen(
        [PY, "-m", "corral", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,  # type: ignore[arg-type]
    )


def ctrl_c(proc: subprocess.Popen) -> None:
    """SIGINT to the process group of ``proc``, as Ctrl-C on its terminal; then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def has_a_child(proc: subprocess.Popen) -> bool:
    """Whether the client ``proc`` has spawned a daemon that is still its child."""
    try:
        return proc.poll() is None and bool(psutil.Process(proc.pid).children())
    except psutil.Error:
        return False


def a_daemon_spawned(clients: list[subprocess.Popen]) -> Callable[[], bool]:
    def check() -> bool:
        return any(has_a_child(c) for c in clients) or all(c.poll() is not None for c in clients)

    return check


def sigkill_all_daemons(home: Path) -> None:
    for pid in daemons_of(home):
        with_cont(pid)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda pid=pid: (reap(pid), gone(pid))[1], what=f"daemon {pid} gone")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def one_daemon_running(home: Path, token: str, expected: dict[str, int]) -> bool:
    """Exactly one daemon for ``home``, and it runs each app ``expected`` times, online."""
    daemons = daemons_of(home)
    if len(daemons) != 1:
        return False
    listed = subprocess.run(
        [PY, "-m", "corral", "jlist"], capture_output=True, text=True, timeout=60
    )
    if listed.returncode != 0:
        return False
    rows = json.loads(listed.stdout)
    counts: dict[str, int] = {}
    for row in rows:
        if row["pm2_env"]["status"] != "online":
            return False
        counts[row["name"]] = counts.get(row["name"], 0) + 1
    running = {name: len(pids) for name, pids in marked_processes(token).items()}
    return counts == expected and running == expected


# -- (a) clients killed while the daemon boots ------------------------------------


def test_ctrl_c_during_the_boot_never_makes_two_daemons(
    corral_home: Path, app_path, token: str, every_process: None
) -> None:
    expected = {f"app-{i}": 1 for i in range(4)}
    client = corral.connect()
    for name in expected:
        client.start(app_path("sleeper.py"), marked(token, name))
    client.disconnect()
    wait_for(lambda: one_daemon_running(corral_home, token, expected), what="apps online")
    rng = random.Random(token)
    interrupted = 0
    for round_ in range(6):
        sigkill_all_daemons(corral_home)  # its apps run on: the next daemon takes them over
        # clients racing to start the daemon: the one that spawned it is Ctrl-C'ed during
        # its boot, while the others wait their turn to spawn
        clients = [cli(command) for command in ("ls", "dump", "ls")]
        wait_for(a_daemon_spawned(clients), what="a daemon spawned")
        time.sleep(rng.uniform(0, 0.15))
        spawner = [c for c in clients if has_a_child(c)]
        for proc in spawner:
            ctrl_c(proc)
            interrupted += proc.returncode in (130, -signal.SIGINT)
        rest = [c for c in clients if c not in spawner]
        if round_ % 2:  # the others are Ctrl-C'ed too, at another moment
            time.sleep(rng.uniform(0, 0.15))
            for proc in rest:
                ctrl_c(proc)
        for proc in rest:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode in (0, 130, -signal.SIGINT), err
    assert interrupted >= 3, "the clients finished before the Ctrl-C: the test saw no boot"
    final = subprocess.run([PY, "-m", "corral", "ls"], capture_output=True, text=True, timeout=60)
    assert final.returncode == 0, final.stderr
    wait_for(
        lambda: one_daemon_running(corral_home, token, expected),
        timeout=40,
        what=f"one daemon running each app once (daemons now: {daemons_of(corral_home)})",
    )


# -- (b) a stopped daemon is not taken for dead -----------------------------------


def test_a_stopped_daemon_is_never_doubled(
    corral_home: Path, app_path, token: str, every_process: None
) -> None:
    expected = {"a": 1, "b": 1}
    client = corral.connect()
    for name in expected:
        client.start(app_path("sleeper.py"), marked(token, name))
    daemon = client.daemon_pid
    assert daemon
    client.disconnect()
    wait_for(lambda: one_daemon_running(corral_home, token, expected), what="apps online")
    os.kill(daemon, signal.SIGSTOP)
    try:
        # the API, with a short wait: a clear error, no second daemon
        started = time.monotonic()
        with pytest.raises(DaemonError) as caught:
            ensure_daemon(corral_home, timeout=2.0)
        assert time.monotonic() - started < 10
        message = str(caught.value)
        assert f"pid {daemon}" in message and "SIGSTOP" in message
        assert f"kill -CONT {daemon}" in message
        # the CLI (its default 15 s wait): `ls` and `kill` at once, both refuse
        ls, kill = cli("ls"), cli("kill")
        out_ls, err_ls = ls.communicate(timeout=90)
        out_kill, err_kill = kill.communicate(timeout=90)
        assert ls.returncode == 1 and kill.returncode == 1, (err_ls, err_kill)
        for err in (err_ls, err_kill):
            assert err.startswith("error: ") and len(err.splitlines()) == 1
            assert f"the daemon (pid {daemon})" in err and "did not answer" in err
        assert "No process is managed" not in out_ls
        assert "daemon killed" not in out_kill
        assert daemons_of(corral_home) == [daemon]
        assert {n: len(p) for n, p in marked_processes(token).items()} == expected
    finally:
        os.kill(daemon, signal.SIGCONT)
    wait_for(lambda: one_daemon_running(corral_home, token, expected), what="the same daemon")
    assert daemons_of(corral_home) == [daemon]
    done = subprocess.run([PY, "-m", "corral", "kill"], capture_output=True, text=True, timeout=60)
    assert "daemon killed" in done.stdout, done.stderr
    assert daemons_of(corral_home) == [] and marked_processes(token) == {}


# -- (c) a second daemon on a live home exits at once, touching nothing -----------


def snapshot(home: Path) -> dict[str, tuple]:
    """What a second daemon must not change: each file's inode, mtime and bytes."""
    seen: dict[str, tuple] = {}
    for name in ("state.json", "rpc.sock", "corral.pid", "notify.sock", "daemon.lock"):
        path = home / name
        info = path.lstat()
        data = path.read_bytes() if path.is_file() else b""
        seen[name] = (info.st_ino, info.st_mtime_ns, data)
    return seen


def test_a_second_daemon_exits_at_once_and_changes_nothing(
    corral_home: Path, app_path, token: str, every_process: None
) -> None:
    client = corral.connect()
    client.start(app_path("sleeper.py"), marked(token, "only"))
    daemon = client.daemon_pid
    wait_for(lambda: one_daemon_running(corral_home, token, {"only": 1}), what="app online")
    before = snapshot(corral_home)
    started = time.monotonic()
    second = subprocess.Popen(
        [PY, "-m", "corral.daemon.main"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = second.communicate(timeout=20)
    finally:
        if second.poll() is None:
            kill_tree(second.pid)
            second.communicate()
    took = time.monotonic() - started
    assert second.returncode != 0
    assert err.splitlines() == [
        f"corral daemon: another daemon (pid {daemon}) holds CORRAL_HOME {corral_home}: "
        "only one daemon runs per home; this one exits and changes nothing"
    ]
    assert took < 5, f"the second daemon took {took:.2f} s to give up"
    assert snapshot(corral_home) == before
    assert client.ping()["pid"] == daemon
    assert daemons_of(corral_home) == [daemon]
    assert {n: len(p) for n, p in marked_processes(token).items()} == {"only": 1}
    client.kill_daemon()


def test_an_in_process_daemon_refuses_a_home_a_daemon_holds(
    corral_home: Path, every_process: None
) -> None:
    client = corral.connect()
    with pytest.raises(DaemonError, match="already serves"):
        corral.connect(no_daemon=True)
    assert daemons_of(corral_home) == [client.daemon_pid]
    client.kill_daemon()


# -- (d) the daemon's files are private whatever the umask ------------------------


def test_pid_and_lock_files_are_0600_under_umask_000(
    corral_home: Path, every_process: None
) -> None:
    done = subprocess.run(
        [PY, "-m", "corral", "ping"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: os.umask(0),  # the daemon inherits it too
    )
    assert done.returncode == 0, done.stderr
    modes = {
        name: oct((corral_home / name).stat().st_mode & 0o777)
        if (corral_home / name).exists()
        else None
        for name in ("corral.pid", "daemon.lock", "spawn.lock")
    }
    assert modes == {"corral.pid": "0o600", "daemon.lock": "0o600", "spawn.lock": "0o600"}
