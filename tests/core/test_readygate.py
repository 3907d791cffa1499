"""A plugin's gate on a child's readiness (SpawnSpec.hold_ready) and its when_spawned
callbacks, on a real in-process daemon and real children."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

import corral
from corral.supervisor.readygate import ReadyGate
from corral.testing import wait_for
from tests.conftest import PY, python_app

SLEEPER = "import time\ntime.sleep(3600)\n"


def gate_plugin(bound: float = 5.0) -> SimpleNamespace:
    """A plugin that holds every child's readiness until its RPC ``open_gate`` is called,
    and records the pids its when_spawned callback was given."""
    plugin = SimpleNamespace(gates={}, spawned=[])

    @corral.hookimpl
    def corral_before_spawn(daemon, app, spawn):
        plugin.gates[app.name] = spawn.hold_ready("door", bound)
        spawn.when_spawned(plugin.spawned.append)

    def open_gate(daemon, name):
        plugin.gates[name].open()
        return True

    @corral.hookimpl
    def corral_rpc_commands():
        return {"open_gate": open_gate}

    plugin.corral_before_spawn = corral_before_spawn
    plugin.corral_rpc_commands = corral_rpc_commands
    return plugin


def app(tmp_path, name: str, **options: object) -> dict:
    return {"name": name, "script": python_app(tmp_path, f"{name}.py", SLEEPER),
            "exec_interpreter": PY, **options}  # fmt: skip


def test_a_child_waits_for_the_gate_and_the_callback_has_its_pid(corral_daemon, tmp_path):
    plugin = gate_plugin()
    pm = corral_daemon(plugins=[plugin])
    (info,) = pm.start(app(tmp_path, "door"))
    assert info.status == "online" and not info.ready  # its own signal came: the spawn
    assert plugin.spawned == [info.pid]
    time.sleep(0.2)
    assert not pm.describe("door")[0].ready
    pm.call("open_gate", name="door")
    (now,) = pm.describe("door")
    assert now.ready and now.ready_by == "spawned and door"


def test_wait_ready_waits_for_the_gate_to_its_bound(corral_daemon, tmp_path):
    pm = corral_daemon(plugins=[gate_plugin(bound=0.6)])
    began = time.monotonic()
    (info,) = pm.start(app(tmp_path, "shut", wait_ready=True, listen_timeout=100))
    assert time.monotonic() - began >= 0.6  # the gate's bound, longer than listen_timeout
    assert not info.ready and info.ready_by == "listen_timeout"


def test_a_when_spawned_callback_that_raises_spawns_all_the_same(corral_daemon, tmp_path):
    def boom(pid: int) -> None:
        raise RuntimeError(f"no thanks, {pid}")

    @corral.hookimpl
    def corral_before_spawn(daemon, app, spawn):
        spawn.when_spawned(boom)

    pm = corral_daemon(plugins=[SimpleNamespace(corral_before_spawn=corral_before_spawn)])
    (info,) = pm.start(app(tmp_path, "brave"))
    assert info.status == "online" and info.ready
    log = corral.api.corral_home() / "corral.log"
    line = wait_for(
        lambda: next((x for x in log.read_text().splitlines() if "when_spawned" in x), None),
        what="the callback's error logged",
    )
    assert f"no thanks, {info.pid}" in line


@pytest.mark.parametrize(("name", "bound"), [("", 1.0), ("x", 0), ("x", -1.0), ("x", float("nan"))])
def test_a_gate_needs_a_name_and_a_bound(name, bound):
    with pytest.raises(ValueError):
        ReadyGate(name, bound)
