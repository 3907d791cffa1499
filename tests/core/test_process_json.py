"""ManagedProcess.to_json (the list command's fast path) says what to_dict says."""

from __future__ import annotations

import json
from pathlib import Path

from corral.supervisor.lifecycle import ProcessState
from corral.supervisor.process import ManagedProcess
from tests.conftest import python_app


def make(**options) -> ManagedProcess:
    proc = ManagedProcess(
        pm_id=3,
        name="web",
        options={"cwd": "/srv", "args": ["-v"], "instances": 2, **options},
        env={"PATH": "/bin", "status": "a variable named like a field", "env": "x"},
        script="/srv/web.py",
        interpreter="/usr/bin/python3",
        log_paths={"out": Path("/l/web-out.log"), "err": Path("/l/web-err.log"), "combined": None},
        pid_path=Path("/p/web-3.pid"),
    )
    proc.state = ProcessState.ONLINE
    proc.monit = (1234, 5.5)
    return proc


def test_to_json_is_to_dict():
    proc = make()
    assert json.loads(proc.to_json()) == proc.to_dict()


def test_to_json_follows_replaced_options_env_and_counters():
    proc = make()
    proc.to_json()  # fills the cache
    proc.options = {**proc.options, "kill_timeout": 9000}
    proc.env = {**proc.env, "NEW": "1"}
    proc.state = ProcessState.STOPPED
    proc.exit_code = 3
    proc.instances_of_app = 5
    decoded = json.loads(proc.to_json())
    assert decoded == proc.to_dict()
    env = decoded["pm2_env"]
    assert (env["kill_timeout"], env["NEW"], env["env"]["NEW"]) == (9000, "1", "1")
    assert (env["status"], env["exit_code"], env["instances"]) == ("stopped", 3, 5)


def test_the_list_command_reflects_a_restart_with_new_options(pm, tmp_path):
    script = python_app(tmp_path, "app.py", "import time; time.sleep(60)")
    pm.start(script, {"name": "app", "kill_timeout": 1000})
    assert json.loads(pm.jlist_json())[0]["pm2_env"]["kill_timeout"] == 1000
    pm.restart("app", options={"kill_timeout": 2500})
    listed = json.loads(pm.jlist_json())[0]
    assert listed["pm2_env"]["kill_timeout"] == 2500
    assert listed["pm2_env"]["restart_time"] == 1
    described = pm.describe("app")[0].to_dict()
    assert set(listed["pm2_env"]) == set(described["pm2_env"])
