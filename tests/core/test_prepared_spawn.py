"""A crash restart reuses the spec its slot prepared at the spawn before
(corral.supervisor.prepared): the child must see exactly the environment a fresh spec
gives, the options and env of the moment (never the prepared ones once they were
replaced), and the spare channel must not leak a descriptor."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import corral
from corral.supervisor import prepared
from tests.conftest import PY, python_app, wait_for

DUMPS = """import json, os, sys, time
with open(os.path.join(sys.argv[1], str(os.getpid())), "w") as f:
    json.dump(dict(os.environ), f)
time.sleep(3600)
"""
SLEEPS = "import time\ntime.sleep(3600)\n"
PER_SPAWN = {"CORRAL_CHANNEL_FD", "NOTIFY_SOCKET"}  # set by the spawn, after the spec


class Compare:
    """At every spawn (in the daemon's thread): the spec the slot is about to run, next to
    the one ``Slot._spawn_spec`` makes afresh; also keeps the daemon."""

    def __init__(self) -> None:
        self.api: Any = None
        self.diffs: list[dict[str, Any]] = []
        self.prepared_used = 0

    @corral.hookimpl
    def corral_daemon_start(self, daemon: Any) -> None:
        self.api = daemon

    @corral.hookimpl
    def corral_before_spawn(self, daemon: Any, app: Any, spawn: Any) -> None:
        fresh = app.slot._spawn_spec()
        got = {k: v for k, v in spawn.env.items() if k not in PER_SPAWN}
        if app.slot.next_spec is not None:
            self.prepared_used += 1
        if got != fresh.env or spawn.argv != fresh.argv or spawn.cwd != fresh.cwd:
            keys = set(got) | set(fresh.env)
            self.diffs.append({k: (got.get(k), fresh.env.get(k)) for k in keys
                               if got.get(k) != fresh.env.get(k)})  # fmt: skip

    @property
    def daemon(self) -> Any:
        return self.api._daemon


def _env_of(dumps: Path, pid: int) -> dict[str, str]:
    path = dumps / str(pid)
    wait_for(lambda: path.exists() and path.read_text().endswith("}"), what=f"{pid}'s env")
    return json.loads(path.read_text())


def _kill_and_wait(client: Any, name: str, restarts: int) -> int:
    (info,) = client.describe(name)
    os.kill(info.pid, signal.SIGKILL)
    wait_for(
        lambda: (i := client.describe(name)[0]).restart_time == restarts and i.status == "online",
        what=f"restart {restarts}",
    )
    return client.describe(name)[0].pid


def test_a_crash_restart_runs_the_env_a_fresh_spec_gives_and_sees_a_replaced_env(
    corral_home, tmp_path
):
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    app = python_app(tmp_path, "dumps.py", DUMPS)
    compare = Compare()
    with corral.connect(corral_home, no_daemon=True, plugins=[compare]) as client:
        client.start(
            app,
            {"name": "dumps", "interpreter": PY, "args": [str(dumps)],
             "env": {"FOO": "1"}, "max_restarts": 1000, "increment_var": "PORTX"},
        )  # fmt: skip
        for n in range(1, 4):
            pid = _kill_and_wait(client, "dumps", n)
        env = _env_of(dumps, pid)
        assert env["FOO"] == "1" and env["restart_time"] == "3" and env["status"] == "launching"
        assert compare.prepared_used >= 2  # the later restarts ran the prepared spec
        # an update replaces the env and options while the child runs (as a rolling
        # reload does): the next crash restart must not run the prepared, older ones
        daemon = compare.daemon
        proc = next(p for p in daemon.procs.values() if p.name == "dumps")

        def replace() -> None:
            proc.env = {**proc.env, "FOO": "2"}
            proc.options = {**proc.options, "max_restarts": 999, "instance_var": "INSTANCE_ID"}

        daemon.loop.call_soon_threadsafe(replace)
        wait_for(lambda: proc.env.get("FOO") == "2")
        pid = _kill_and_wait(client, "dumps", 4)
        env = _env_of(dumps, pid)
        assert env["FOO"] == "2" and env["max_restarts"] == "999" and env["INSTANCE_ID"] == "0"
        pid = _kill_and_wait(client, "dumps", 5)  # and the spec made then is reused right
        env = _env_of(dumps, pid)
        assert env["FOO"] == "2" and env["restart_time"] == "5"
        # a stop drops it: a restart by the user starts from a fresh spec
        client.restart("dumps")
        assert proc.slot.next_spec is None and not proc.slot.restarting
        client.delete("dumps")
    assert compare.diffs == []


def test_two_hundred_restarts_leave_the_daemons_descriptors_flat(pm, tmp_path):
    app = python_app(tmp_path, "sleeps.py", SLEEPS)
    pm.start(app, {"name": "sleeps", "interpreter": PY, "max_restarts": 100_000})
    wait_for(lambda: pm.describe("sleeps")[0].status == "online")
    daemon_pid = int((Path(os.environ["CORRAL_HOME"]) / "corral.pid").read_text())

    def fds() -> int:
        return len(os.listdir(f"/proc/{daemon_pid}/fd"))

    _kill_and_wait(pm, "sleeps", 1)
    _kill_and_wait(pm, "sleeps", 2)  # the spare channel and the prepared spec exist now
    before = fds()
    for n in range(3, 203):
        _kill_and_wait(pm, "sleeps", n)
    wait_for(lambda: fds() <= before, what=f"fds back to {before} (now {fds()})", timeout=5)
    assert pm.describe("sleeps")[0].restart_time == 202
    pm.delete("sleeps")


def test_the_spare_channel_is_closed_with_the_daemon(corral_home, tmp_path):
    app = python_app(tmp_path, "sleeps.py", SLEEPS)
    compare = Compare()
    with corral.connect(corral_home, no_daemon=True, plugins=[compare]) as client:
        client.start(app, {"name": "sleeps", "interpreter": PY, "max_restarts": 100})
        _kill_and_wait(client, "sleeps", 1)
        daemon = compare.daemon
        spares = prepared._SPARES[daemon]
        wait_for(lambda: len(spares.channels) == prepared.SPARE_CHANNELS)
        channels = list(spares.channels)
        client.kill_daemon()
    assert all(c.closed for c in channels) and spares.channels == []
