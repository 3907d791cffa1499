"""The daemon's robustness: real daemons, real children, real zmq sockets.

Every wait polls with a deadline; every process a test starts is ended by pid,
by the fixtures or by the test itself when it outlives them (a daemon started
by another process, the children of a daemon killed with SIGKILL).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import psutil
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

import corral
from corral.errors import StateError
from corral.testing import apps_of
from tests.conftest import kill_pids, out_lines, python_app, wait_for

SLEEP = shutil.which("sleep") or "/bin/sleep"
FALSE = shutil.which("false") or "/bin/false"
ERROR_TYPES = {
    "CorralError",
    "OptionError",
    "ConfigError",
    "NotFoundError",
    "ScriptError",
    "DaemonError",
    "ProtocolError",
    "PluginError",
    "StateError",
}


# -- helpers -----------------------------------------------------------------


def alive(pid: int | None) -> bool:
    """True while ``pid`` runs; a zombie nobody reaped yet counts as gone."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def reap(pid: int) -> None:
    """Collect ``pid`` if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def grandchild(info: corral.ProcessInfo, after: int | None = None) -> int:
    """The last pid a forking test app printed as ``grandchild=<pid>``, printed after ``after``."""

    def find() -> int | None:
        pids = [int(m) for m in re.findall(r"^grandchild=(\d+)$", "\n".join(out_lines(info)), re.M)]
        if after in pids:
            pids = pids[pids.index(after) + 1 :]
        return pids[-1] if pids else None

    return int(wait_for(find, timeout=10))


def processes_of(home: Path, running: Callable[[list[str]], bool]) -> list[int]:
    """Live pids whose CORRAL_HOME is ``home`` and whose command line ``running`` accepts."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if not running(proc.info["cmdline"] or []) or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("CORRAL_HOME") == str(home):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return sorted(found)


def daemons_of(home: Path) -> list[int]:
    return processes_of(home, lambda cmdline: "corral.daemon.main" in " ".join(cmdline))


def app_processes(home: Path, script: str) -> list[int]:
    return processes_of(home, lambda cmdline: script in cmdline)


def read_state(home: Path) -> dict | None:
    """The state file, or None before the daemon first writes it."""
    try:
        return json.loads((home / "state.json").read_text())
    except FileNotFoundError:
        return None


def state_apps(home: Path) -> dict[str, dict]:
    state = read_state(home)
    return {entry["name"]: entry for entry in state["apps"]} if state else {}


def state_rows(home: Path) -> dict[int, tuple]:
    """``{pm_id: (name, status, pid)}`` from the state file."""
    state = read_state(home)
    return {e["pm_id"]: (e["name"], e["status"], e["pid"]) for e in state["apps"]} if state else {}


def by_name(client: corral.Client) -> dict[str, corral.ProcessInfo]:
    return {p.name: p for p in client.list()}


def statuses(client: corral.Client) -> dict[str, str]:
    return {p.name: p.status for p in client.list()}


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


# -- 1. concurrent connects --------------------------------------------------

CONNECT_AT_GO = """\
import pathlib, sys, time
import corral
here = pathlib.Path(sys.argv[1])
(here / f"ready-{sys.argv[2]}").touch()
deadline = time.monotonic() + 30
while not (here / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.001)
print(corral.connect().ping()["pid"], flush=True)
"""


def test_concurrent_connects_start_one_daemon(corral_home, tmp_path):
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", CONNECT_AT_GO, str(tmp_path), str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    try:
        # everyone has imported corral and waits at the barrier: then all go at once
        wait_for(lambda: len(list(tmp_path.glob("ready-*"))) == 8, timeout=30)
        (tmp_path / "go").touch()
        outputs = [client.communicate(timeout=30) for client in clients]
        assert [c.returncode for c in clients] == [0] * 8, [err for _, err in outputs]
        pids = {int(out.strip()) for out, _ in outputs}
        assert len(pids) == 1, pids
        (pid,) = pids
        assert int((corral_home / "corral.pid").read_text()) == pid
        assert daemons_of(corral_home) == [pid]
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.wait()
        # the daemon's parent was one of the clients, so no fixture sees it as ours
        kill_pids(daemons_of(corral_home))


# -- 2. twenty clients at once -----------------------------------------------


class Churner:
    """One thread's work: list/describe/start/stop/restart of its own app for a while."""

    def __init__(self, client: corral.Client, index: int, until: float) -> None:
        self.client = client
        self.name = f"w{index}"
        self.until = until
        self.random = random.Random(index)
        self.expected: dict[int, str] = {}  # pm_id -> status last requested
        self.calls = 0
        self.failures: list[str] = []

    def app(self, **extra: object) -> dict:
        return {"script": SLEEP, "args": ["3600"], "name": self.name, **extra}

    def run(self) -> None:
        try:
            for info in self.client.start(self.app(force=True)):
                self.expected[info.pm_id] = "online"
            self.calls += 1
            while time.monotonic() < self.until:
                self.step(self.random.choice(["list", "describe", "stop", "restart", "start"]))
                self.calls += 1
        except Exception:
            self.failures.append(traceback.format_exc())

    def step(self, action: str) -> None:
        client, name = self.client, self.name
        if action == "list":
            assert all(isinstance(p, corral.ProcessInfo) for p in client.list())
        elif action == "describe":
            assert {p.pm_id for p in client.describe(name)} == set(self.expected)
        elif action == "stop":
            assert {p.status for p in client.stop(name)} == {"stopped"}
            self.expected = dict.fromkeys(self.expected, "stopped")
        elif action == "restart":
            assert {p.status for p in client.restart(name)} == {"online"}
            self.expected = dict.fromkeys(self.expected, "online")
        elif len(self.expected) < 3 and self.random.random() < 0.5:
            # another copy of the same app, as PM2's --force
            (info,) = client.start(self.app(force=True))
            assert info.pm_id not in self.expected and info.status == "online"
            self.expected[info.pm_id] = "online"
        elif "online" in self.expected.values():
            with pytest.raises(StateError, match="already running"):
                client.start(self.app())
        else:
            assert {p.status for p in client.start(self.app())} == {"online"}
            self.expected = dict.fromkeys(self.expected, "online")


def test_twenty_clients_and_a_shared_one(pm, corral_home):
    until = time.monotonic() + 3.0
    own = [corral.connect() for _ in range(20)]
    shared = corral.connect()
    churners = [Churner(client, i, until) for i, client in enumerate(own)]
    churners += [Churner(shared, 20 + i, until) for i in range(4)]
    threads = [threading.Thread(target=c.run, daemon=True) for c in churners]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0.1, until + 30 - time.monotonic()))
        stuck = [c.name for c, t in zip(churners, threads, strict=True) if t.is_alive()]
        assert not stuck, f"calls never answered (deadlock?) in {stuck}"
        failures = [f for c in churners for f in c.failures]
        assert not failures, "\n".join(failures)
        assert all(c.calls > 1 for c in churners), [c.calls for c in churners]
        final = {p.pm_id: p for p in pm.list()}
        expected = {pm_id: s for c in churners for pm_id, s in c.expected.items()}
        assert {i: p.status for i, p in final.items()} == expected
        online = [p.pid for p in final.values() if p.status == "online"]
        assert len(set(online)) == len(online) and all(alive(pid) for pid in online)
        assert sorted(app_processes(corral_home, SLEEP)) == sorted(online)
    finally:
        for client in [*own, shared]:
            client.disconnect()


def test_concurrent_restarts_of_one_app_are_serialised(pm):
    info = pm.start({"script": SLEEP, "args": ["3600"], "name": "one"})[0]
    errors: list[str] = []

    def restart() -> None:
        try:
            pm.restart("one")
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=restart, daemon=True) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and not any(t.is_alive() for t in threads), errors
    final = pm.describe("one")[0]
    assert final.status == "online" and final.restart_time == 10
    children = apps_of(pm.daemon_pid)
    assert [c.pid for c in children if c.status() != psutil.STATUS_ZOMBIE] == [final.pid]
    assert not alive(info.pid)


# -- 3. a long stop never blocks other commands ------------------------------


def test_long_stop_does_not_block_other_commands(pm, app_path):
    stubborn = pm.start(app_path("stubborn.py"), {"name": "stubborn", "kill_timeout": 3000})[0]
    pm.start(app_path("sleeper.py"), {"name": "other"})
    wait_for(lambda: "ready" in out_lines(stubborn))  # SIGINT is ignored from here on
    stopped: dict[str, object] = {}

    def stop() -> None:
        stopped["infos"], stopped["took"] = timed(pm.stop, "stubborn")

    thread = threading.Thread(target=stop, daemon=True)
    thread.start()
    wait_for(lambda: pm.describe("stubborn")[0].status == "stopping")
    listed, list_took = timed(pm.list)
    restarted, restart_took = timed(pm.restart, "other")
    assert pm.describe("stubborn")[0].status == "stopping"  # still in flight
    assert list_took < 1.5 and restart_took < 1.5, (list_took, restart_took)
    assert {p.name for p in listed} == {"stubborn", "other"}
    assert restarted[0].status == "online" and restarted[0].restart_time == 1

    thread.join(10)
    assert not thread.is_alive()
    assert 3.0 <= stopped["took"] < 4.5, stopped["took"]
    (info,) = stopped["infos"]
    assert info.status == "stopped" and info.exit_code == -signal.SIGKILL
    assert not alive(stubborn.pid)


# -- 4. SIGKILL the daemon ---------------------------------------------------


def test_sigkilled_daemon_is_replaced_with_the_same_apps(corral_home, app_path):
    client = corral.connect()
    a = client.start(
        app_path("sleeper.py"),
        {"name": "a", "env": {"GREETING": "kept"}, "args": ["--x", "1"], "max_restarts": 7},
    )[0]
    b = client.start(app_path("forker.py"), {"name": "b", "kill_timeout": 500})[0]
    client.start(app_path("sleeper.py"), {"name": "c"})
    client.stop("c")
    old_grandchild = grandchild(b)
    before = {p.name: p for p in client.list(env=True)}  # env too: compared after the kill
    wait_for(
        lambda: (
            {n: (e["status"], e["pid"]) for n, e in state_apps(corral_home).items()}
            == {"a": ("online", a.pid), "b": ("online", b.pid), "c": ("stopped", None)}
        )
    )
    old_daemon = client.daemon_pid
    old_pids = [a.pid, b.pid, old_grandchild]
    try:
        os.kill(old_daemon, signal.SIGKILL)
        wait_for(lambda: (reap(old_daemon), not alive(old_daemon))[1])
        assert all(alive(pid) for pid in old_pids)  # orphans now: the new daemon must end them

        again = corral.connect()
        assert again.daemon_pid != old_daemon
        wait_for(lambda: statuses(again) == {"a": "online", "b": "online", "c": "stopped"})
        after = by_name(again)
        for name, old in before.items():
            new = after[name]
            assert new.pm_id == old.pm_id, name
            assert new.options == old.options, name
            assert new.env == old.env, name
        assert after["a"].env["GREETING"] == "kept" and after["a"].options["max_restarts"] == 7
        assert after["c"].pid is None
        wait_for(lambda: not any(alive(pid) for pid in old_pids))
        assert app_processes(corral_home, app_path("sleeper.py")) == [after["a"].pid]
        assert app_processes(corral_home, app_path("forker.py")) == [after["b"].pid]
        assert grandchild(after["b"], after=old_grandchild) != old_grandchild
        again.kill_daemon()
    finally:
        kill_pids(old_pids)


def test_commands_wait_for_the_recovery_of_a_killed_daemons_apps(corral_home, app_path):
    client = corral.connect()
    info = client.start(app_path("stubborn.py"), {"name": "slow", "kill_timeout": 1500})[0]
    wait_for(lambda: "ready" in out_lines(info))
    wait_for(lambda: state_apps(corral_home).get("slow", {}).get("pid") == info.pid)
    old_daemon = client.daemon_pid
    try:
        os.kill(old_daemon, signal.SIGKILL)
        wait_for(lambda: (reap(old_daemon), not alive(old_daemon))[1])
        again = corral.connect()
        # the orphan needs 1.5 s to die; the app must not look deleted meanwhile
        assert [p.name for p in again.list()] == ["slow"]
        again.kill_daemon()
    finally:
        kill_pids([info.pid])


# -- 5. malformed RPC frames -------------------------------------------------


def ask(sock: zmq.Socket, *frames: bytes, timeout: float = 5.0) -> dict:
    sock.send_multipart(list(frames))
    assert sock.poll(int(timeout * 1000)), f"no reply to {frames!r:.200}"
    return json.loads(sock.recv())


def assert_error(reply: dict, error_type: str | None = None) -> None:
    assert reply["ok"] is False, reply
    error = reply["error"]
    assert error["type"] in ERROR_TYPES and isinstance(error["message"], str), reply
    assert error["message"]
    if error_type:
        assert error["type"] == error_type, reply


def apps_snapshot(client: corral.Client) -> list[tuple]:
    return [(p.pm_id, p.name, p.pid, p.status, p.restart_time) for p in client.list()]


@pytest.fixture
def two_apps(pm, app_path) -> list[tuple]:
    """One app online, one stopped; returns their snapshot."""
    pm.start(app_path("sleeper.py"), {"name": "up"})
    pm.start(app_path("sleeper.py"), {"name": "down"})
    pm.stop("down")
    return apps_snapshot(pm)


MALFORMED = [
    ("random bytes", [random.Random(0).randbytes(256)], "ProtocolError"),
    ("binary", [b"\x00\xff\xfe\x01"], "ProtocolError"),
    ("empty frame", [b""], "ProtocolError"),
    ("not json", [b"hello daemon"], "ProtocolError"),
    ("bad utf-8", [b'{"cmd": "\xff"}'], "ProtocolError"),
    ("json list", [b'[{"cmd": "ping"}]'], "ProtocolError"),
    ("json string", [b'"ping"'], "ProtocolError"),
    ("no cmd", [b'{"id": 5, "args": {}}'], "ProtocolError"),
    ("cmd not a string", [b'{"id": 5, "cmd": 42}'], "ProtocolError"),
    ("args not an object", [b'{"cmd": "ping", "args": []}'], "ProtocolError"),
    ("unknown cmd", [b'{"id": 6, "cmd": "nope"}'], "ProtocolError"),
    ("private method", [b'{"cmd": "__init__", "args": {}}'], "ProtocolError"),
    ("bad args", [b'{"id": 7, "cmd": "stop", "args": {"nope": 1}}'], "ProtocolError"),
    ("missing args", [b'{"cmd": "stop", "args": {}}'], "ProtocolError"),
    ("extra args", [b'{"cmd": "kill_daemon", "args": {"now": true}}'], "ProtocolError"),
    ("apps not a list", [b'{"cmd": "start", "args": {"apps": "x", "cwd": "/"}}'], "OptionError"),
    (
        "app not an object",
        [b'{"cmd": "start", "args": {"apps": ["x"], "cwd": "/"}}'],
        "OptionError",
    ),
    (
        "missing script",
        [b'{"cmd": "start", "args": {"apps": [{"script": "/nonexistent.py"}], "cwd": "/"}}'],
        "ScriptError",
    ),
    ("target not a name", [b'{"cmd": "describe", "args": {"target": {"a": 1}}}'], "OptionError"),
    ("target a bool", [b'{"cmd": "stop", "args": {"target": true}}'], "OptionError"),
    ("target null", [b'{"cmd": "delete", "args": {"target": null}}'], "OptionError"),
    # one bad name in a list acts on none of them
    ("one unknown target", [b'{"cmd": "stop", "args": {"target": [0, "ghost"]}}'], "NotFoundError"),
    (
        "bad restart option",
        [b'{"cmd": "restart", "args": {"target": "all", "options": {"max_restarts": "x"}}}'],
        "OptionError",
    ),
    (
        "bad signal",
        [b'{"cmd": "send_signal_to_process_name", "args": {"signal": "SIGNOPE", "target": 0}}'],
        "OptionError",
    ),
    ("deep nesting", [b"[" * 100_000], None),
    ("oversized", [b" " * (16 * 1024 * 1024 + 1)], "ProtocolError"),
    ("multi-frame", [b'{"cmd": "ping"}', b'{"cmd": "ping"}'], "ProtocolError"),
    ("multi-frame, empty first", [b"", b'{"cmd": "stop", "args": {"target": "all"}}'], None),
]


def test_malformed_frames_get_error_replies_and_change_nothing(pm, raw, two_apps):
    for label, frames, error_type in MALFORMED:
        reply = ask(raw, *frames)
        try:
            assert_error(reply, error_type)
        except AssertionError as exc:
            raise AssertionError(f"{label}: {exc}") from None
    pong = ask(raw, b'{"id": 9, "cmd": "ping"}')
    assert pong["id"] == 9 and pong["ok"] is True and pong["result"]["pid"] == pm.daemon_pid
    assert ask(raw, b'{"id": "x", "cmd": "nope"}')["id"] == "x"  # the id comes back
    assert apps_snapshot(pm) == two_apps
    assert all(alive(pid) for _, _, pid, status, _ in two_apps if status == "online")


def test_client_that_leaves_mid_call_does_not_hurt_the_daemon(pm, app_path, corral_home):
    info = pm.start(app_path("stubborn.py"), {"name": "stubborn", "kill_timeout": 300})[0]
    wait_for(lambda: "ready" in out_lines(info))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(f"ipc://{corral_home}/rpc.sock")
    sock.send(b'{"id": 1, "cmd": "stop", "args": {"target": "stubborn"}}')
    sock.close()  # gone before the reply, which the daemon cannot deliver
    ctx.term()
    wait_for(lambda: pm.describe("stubborn")[0].status == "stopped", timeout=5)
    assert pm.ping()["pid"] == pm.daemon_pid and not alive(info.pid)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
READ_ONLY = ["ping", "list", "describe", "plugins", "options"]
ACTING = [
    "start",
    "stop",
    "restart",
    "reload",
    "delete",
    "dump",
    "resurrect",
    "flush",
    "reset",
    "reload_logs",
    "send_signal_to_process_name",
    "send_signal_to_process_id",
    "kill_daemon",
]
ARG_NAMES = ["target", "apps", "cwd", "env", "signal", "pm_id", "force", "options", "update_env"]
any_args = json_values | st.dictionaries(
    st.sampled_from(ARG_NAMES) | st.text(max_size=8), json_values, max_size=4
)


def harmless(request: object) -> bool:
    """Acting commands only ever get an argument they do not take, so they cannot act."""
    if not isinstance(request, dict) or request.get("cmd") not in ACTING:
        return True
    args = request.get("args", {})
    return not isinstance(args, dict) or "zz_bogus" in args


requests = st.one_of(
    st.fixed_dictionaries(
        {"cmd": st.sampled_from(READ_ONLY) | st.text(max_size=12) | json_values},
        optional={"id": json_values, "args": any_args},
    ),
    st.fixed_dictionaries(
        {
            "cmd": st.sampled_from(ACTING),
            "args": st.dictionaries(st.sampled_from(ARG_NAMES), json_values, max_size=3).map(
                lambda args: {**args, "zz_bogus": 1}
            ),
        },
        optional={"id": json_values},
    ),
    st.dictionaries(st.sampled_from(["id", "cmd", "args"]) | st.text(max_size=6), json_values),
    json_values,
).filter(harmless)


def test_random_requests_never_hurt_the_daemon(pm, raw, two_apps):
    daemon_pid = pm.daemon_pid

    @settings(max_examples=100, deadline=None, database=None)
    @given(request=requests)
    def check(request: object) -> None:
        reply = ask(raw, json.dumps(request).encode())
        if reply["ok"] or reply["id"] is not None:
            assert reply["id"] == request.get("id")
        if not reply["ok"]:
            assert_error(reply)
            return
        cmd = request["cmd"]
        assert cmd in READ_ONLY, reply
        result = reply["result"]
        if cmd == "ping":
            assert result["pid"] == daemon_pid
        else:
            assert isinstance(result, list)

    check()
    assert pm.ping()["pid"] == daemon_pid
    assert apps_snapshot(pm) == two_apps


# -- 6. the state file -------------------------------------------------------


def test_state_file_follows_every_change_and_is_written_atomically(pm, app_path, corral_home):
    bad_reads: list[str] = []
    done = threading.Event()

    def read_constantly() -> None:
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                text = (corral_home / "state.json").read_text()
                try:
                    json.loads(text)
                except ValueError:
                    bad_reads.append(text)

    reader = threading.Thread(target=read_constantly, daemon=True)
    reader.start()
    try:
        a = pm.start(app_path("sleeper.py"), {"name": "a", "env": {"GREETING": "hi"}})[0]
        b0, b1 = pm.start(app_path("sleeper.py"), {"name": "b", "instances": 2})
        wait_for(
            lambda: (
                state_rows(corral_home)
                == {
                    0: ("a", "online", a.pid),
                    1: ("b", "online", b0.pid),
                    2: ("b", "online", b1.pid),
                }
            )
        )
        state = read_state(corral_home)
        assert state["version"] == 1 and state["daemon_pid"] == pm.daemon_pid
        assert state["apps"][0]["env"]["GREETING"] == "hi"
        assert state["apps"][0]["options"]["name"] == "a"

        pm.stop("a")
        wait_for(lambda: state_rows(corral_home)[0] == ("a", "stopped", None))
        restarted = pm.restart("a")[0]
        wait_for(lambda: state_rows(corral_home)[0] == ("a", "online", restarted.pid))
        pm.delete("b")
        wait_for(lambda: list(state_rows(corral_home)) == [0])
        pm.delete("all")
        wait_for(lambda: read_state(corral_home)["apps"] == [])
    finally:
        done.set()
        reader.join(5)
    assert not bad_reads, bad_reads[:1]
    assert [p.name for p in corral_home.iterdir() if p.name.endswith(".tmp")] == []


# -- 7. the lifecycle, live --------------------------------------------------


def watch_restarts(
    client: corral.Client, first: corral.ProcessInfo, spawns: int
) -> tuple[list[int], dict[int, int]]:
    """The ``pm_uptime`` of the first ``spawns`` spawns, and the delay shown while waiting.

    Each spawn's ``pm_uptime`` stays visible until the next one, and each wait
    lasts the restart delay, so polling every few ms sees every one of them.
    """
    uptimes = {first.restart_time: first.pm_uptime}
    delays: dict[int, int] = {}  # restart_time before the wait -> prev_restart_delay

    def enough() -> bool:
        info = client.describe(first.pm_id)[0]
        uptimes.setdefault(info.restart_time, info.pm_uptime)
        if info.status == "waiting restart":
            delays.setdefault(info.restart_time, info.pm2_env["prev_restart_delay"])
        return info.restart_time >= spawns - 1

    wait_for(enough, timeout=10, interval=0.003)
    client.stop(first.pm_id)
    assert sorted(uptimes)[:spawns] == list(range(spawns)), uptimes
    return [uptimes[k] for k in range(spawns)], delays


def test_crash_loop_ends_errored(pm, app_path):
    pm.start(app_path("crasher.py"), {"name": "loop", "min_uptime": 1000, "max_restarts": 3})
    info = wait_for(lambda: next((p for p in pm.describe("loop") if p.status == "errored"), None))
    # decide_exit counts an unstable exit before comparing with max_restarts, so the
    # third quick exit is the last: two restarts (PM2's God.handleExit does the same)
    assert info.restart_time == 2
    assert info.unstable_restarts == 0 and info.created_at is None and info.pid is None
    assert info.exit_code == 1
    assert out_lines(info).count("crashing") == 3


def test_exponential_backoff_delays(pm):
    first = pm.start({"script": FALSE, "name": "backoff", "exp_backoff_restart_delay": 100})[0]
    uptimes, delays = watch_restarts(pm, first, 4)
    assert [delays.get(k) for k in range(3)] == [100, 150, 225], delays
    gaps = [b - a for a, b in pairwise(uptimes)]
    for gap, delay in zip(gaps, (100, 150, 225), strict=True):
        assert delay <= gap < delay + 150, gaps


def test_fixed_restart_delay(pm):
    first = pm.start({"script": FALSE, "name": "fixed", "restart_delay": 200})[0]
    uptimes, delays = watch_restarts(pm, first, 3)
    assert set(delays.values()) <= {0}  # only the exponential backoff remembers its delay
    gaps = [b - a for a, b in pairwise(uptimes)]
    assert all(200 <= gap < 350 for gap in gaps), gaps


def test_autorestart_false_stops_with_the_exit_code(pm, app_path):
    pm.start(app_path("crasher.py"), {"name": "once", "autorestart": False, "args": ["7"]})
    info = wait_for(lambda: next((p for p in pm.describe("once") if p.status == "stopped"), None))
    assert info.exit_code == 7 and info.restart_time == 0 and info.pid is None
    assert out_lines(info) == ["crashing"]


def test_stop_exit_codes(pm, app_path):
    options = {"stop_exit_codes": [3], "max_restarts": 1}
    pm.start(app_path("crasher.py"), {**options, "name": "three", "args": ["3"]})
    pm.start(app_path("crasher.py"), {**options, "name": "four", "args": ["4"]})
    wait_for(lambda: statuses(pm) == {"three": "stopped", "four": "errored"})
    three, four = pm.describe("three")[0], pm.describe("four")[0]
    assert (three.exit_code, three.restart_time) == (3, 0)
    assert (four.exit_code, four.restart_time) == (4, 0)


def test_kill_timeout_then_sigkill(pm, app_path):
    info = pm.start(app_path("stubborn.py"), {"name": "stubborn", "kill_timeout": 800})[0]
    wait_for(lambda: "ready" in out_lines(info))
    (stopped,), took = timed(pm.stop, "stubborn")
    assert 0.8 <= took < 1.8, took
    assert stopped.status == "stopped" and stopped.exit_code == -signal.SIGKILL
    assert not alive(info.pid)


def test_tree_kill_on_stop_delete_and_kill_daemon(corral_home, app_path):
    client = corral.connect()
    info = client.start(app_path("forker.py"), {"name": "tree"})[0]
    first = grandchild(info)
    assert alive(first)
    client.stop("tree")
    wait_for(lambda: not alive(first), timeout=3)

    client.restart("tree")
    second = grandchild(info, after=first)
    assert alive(second)
    client.delete("tree")
    wait_for(lambda: not alive(second), timeout=3)

    info = client.start(app_path("forker.py"), {"name": "tree"})[0]
    third = grandchild(info, after=second)
    assert alive(third)
    client.kill_daemon()
    assert not alive(third) and not alive(info.pid)


def test_grandchild_ignoring_sigint_is_killed_with_its_parent(pm, app_path):
    info = pm.start(
        app_path("stubborn.py"), {"name": "stubborn", "args": ["fork"], "kill_timeout": 500}
    )[0]
    wait_for(lambda: "ready" in out_lines(info))
    child = grandchild(info)
    (stopped,), took = timed(pm.stop, "stubborn")
    assert took >= 0.5 and stopped.status == "stopped"
    wait_for(lambda: not alive(child) and not alive(info.pid), timeout=2)


ESCAPER = """\
import os, signal, time
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.setsid()  # leaves the app's process group: only the tree snapshot finds it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.write(w, b"x")
    while True:
        time.sleep(3600)
os.read(r, 1)
print(f"grandchild={child}", flush=True)
while True:
    time.sleep(3600)
"""


def test_grandchild_that_left_the_group_is_killed_after_kill_timeout(pm, tmp_path):
    info = pm.start(python_app(tmp_path, "escaper.py", ESCAPER), {"kill_timeout": 500})[0]
    child = grandchild(info)
    assert os.getpgid(child) != info.pid
    try:
        (stopped,), took = timed(pm.stop, "escaper")
        assert stopped.status == "stopped" and stopped.exit_code != -signal.SIGKILL
        assert took >= 0.5  # the parent left on SIGINT; its child got kill_timeout, then SIGKILL
        wait_for(lambda: not alive(child), timeout=2)
    finally:
        kill_pids([child])


# -- 8. an exit is noticed at once -------------------------------------------


def test_sigkilled_child_is_replaced_at_once(pm, app_path):
    info = pm.start(app_path("sleeper.py"), {"name": "victim"})[0]
    os.kill(info.pid, signal.SIGKILL)
    started = time.monotonic()
    new = wait_for(
        lambda: next(
            (p for p in pm.describe("victim") if p.pid not in (None, info.pid)),
            None,
        ),
        timeout=5,
        interval=0.002,
    )
    took = time.monotonic() - started
    assert took < 0.5, took
    assert new.status == "online" and new.restart_time == 1
    assert new.exit_code is None
    assert not alive(info.pid)


QUICK_EXIT = """\
import sys, time
with open(sys.argv[1], "a") as f:
    f.write(f"start {time.time()}\\n")
print("printed before exit", flush=True)
with open(sys.argv[1], "a") as f:
    f.write(f"exit {time.time()}\\n")
"""


def test_child_that_exits_is_restarted_at_once(pm, tmp_path):
    times = tmp_path / "times.txt"
    script = python_app(tmp_path, "quick.py", QUICK_EXIT)
    pm.start(script, {"name": "quick", "args": [str(times)]})

    def marks() -> list[tuple[str, float]]:
        with contextlib.suppress(FileNotFoundError):
            return [
                (k, float(v))
                for k, v in (line.split() for line in times.read_text().split("\n") if line)
            ]
        return []

    wait_for(lambda: sum(kind == "start" for kind, _ in marks()) >= 4, timeout=10)
    pm.stop("quick")
    events = marks()
    exits = [t for kind, t in events if kind == "exit"]
    starts = [t for kind, t in events if kind == "start"]
    gaps = [start - end for end, start in zip(exits, starts[1:], strict=False)]
    assert len(gaps) >= 3 and max(gaps) < 0.5, gaps
    printed = out_lines(pm.describe("quick")[0]).count("printed before exit")
    assert len(exits) <= printed <= len(starts)  # no output lost at exit
    assert pm.describe("quick")[0].restart_time >= 3


def test_a_pid_file_that_is_not_a_regular_file_is_never_written_or_removed(pm, tmp_path):
    # pid_file NULL means /dev/null: writing the pid over it, or unlinking it at exit (as root),
    # would destroy the device. A fifo stands in for it here.
    fifo = tmp_path / "app"  # no .pid suffix: no -<pm_id> is added
    os.mkfifo(fifo)
    script = python_app(tmp_path, "quick.py", "import time; time.sleep(0.3)")
    pm.start(script, {"name": "fifo", "pid_file": str(tmp_path / "app")})
    assert Path(pm.describe("fifo")[0].pid_path) == fifo
    wait_for(lambda: pm.describe("fifo")[0].restart_time >= 1, timeout=10)
    pm.delete("fifo")
    assert fifo.is_fifo()


def test_pid_file_is_written_and_removed(pm, tmp_path):
    script = python_app(tmp_path, "sleeper.py", "import time; time.sleep(60)")
    pm.start(script, {"name": "pidf", "pid_file": str(tmp_path / "app.pid")})
    pid_file = Path(pm.describe("pidf")[0].pid_path)
    assert pid_file.parent == tmp_path
    wait_for(lambda: pid_file.exists() and pid_file.read_text() == str(pm.describe("pidf")[0].pid))
    pm.stop("pidf")
    wait_for(lambda: not pid_file.exists())


COUNT_QUEUED = """\
import signal, sys
# a real-time signal queues (SIGINT would coalesce): every one sent is counted
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
print("ready", flush=True)
count = 0
while signal.sigtimedwait([signal.SIGRTMIN], 1.0) is not None:
    count += 1
print(count, flush=True)
"""


def test_signal_tree_signals_each_process_once(tmp_path):
    # killpg reaches the main process: a second, direct signal would land while a Python
    # app exits after the first SIGINT, and kill it with SIGINT (exit code -2)
    from corral.supervisor.kill import signal_tree

    child = subprocess.Popen(
        [sys.executable, "-c", COUNT_QUEUED], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline() == "ready\n"
        signal_tree(child.pid, [], signal.SIGRTMIN, group=True)
        assert child.stdout.readline() == "1\n"
    finally:
        kill_pids([child.pid])
        child.wait()
