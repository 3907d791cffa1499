"""Targets as the caller means them: paths from the caller's cwd, config files as their
apps, and an app's identity (its name when given, else its script). Real daemons, real
processes; the CLI runs in another directory than the daemon's (subprocess cwd=)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from corral.errors import NotFoundError, StateError
from tests.conftest import APPS, wait_for
from tests.conftest import run_cli as corral

SLEEPER = APPS / "sleeper.py"


def app_dir(root: Path, name: str, script: str = "app.py") -> Path:
    """A directory holding a copy of the sleeper app as ``script``."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SLEEPER, folder / script)
    return folder


def by_name(pm) -> dict[str, list]:
    found: dict[str, list] = {}
    for info in pm.list():
        found.setdefault(info.name, []).append(info)
    return found


def online(pm, name: str, count: int = 1) -> list:
    def ready():
        infos = [i for i in pm.list() if i.name == name]
        if len(infos) == count and all(i.status == "online" and i.pid for i in infos):
            return infos
        return None

    return wait_for(ready, timeout=15, what=f"{name} online")


# -- paths, resolved in the caller's cwd ----------------------------------------


def test_cli_restart_stop_delete_by_relative_path_from_the_callers_cwd(pm, tmp_path):
    proj = app_dir(tmp_path, "proj")
    (proj / "sub").mkdir()
    pm.start(str(proj / "app.py"), {"name": "api"})
    first = online(pm, "api")[0].pid

    corral("restart", "./app.py", cwd=proj)
    assert online(pm, "api")[0].pid != first

    corral("stop", "app.py", cwd=proj)  # a file with an extension in the cwd is a path
    assert [i.status for i in pm.list()] == ["stopped"]

    corral("delete", "../app.py", cwd=proj / "sub")
    assert pm.list() == []


def test_api_targets_a_path_relative_to_the_calling_process(pm, tmp_path, monkeypatch):
    proj = app_dir(tmp_path, "proj")
    other = app_dir(tmp_path, "other")
    pm.start(str(proj / "app.py"), {"name": "mine"})
    pm.start(str(other / "app.py"), {"name": "theirs"})
    online(pm, "mine")
    theirs = online(pm, "theirs")[0].pid
    monkeypatch.chdir(proj)

    assert [i.name for i in pm.stop("./app.py")] == ["mine"]
    assert [i.name for i in pm.restart(Path("app.py"))] == ["mine"]
    online(pm, "mine")
    assert [i.name for i in pm.describe("../proj/app.py")] == ["mine"]
    assert [i.name for i in pm.delete("./app.py")] == ["mine"]
    assert [(i.name, i.pid) for i in pm.list()] == [("theirs", theirs)]
    with pytest.raises(NotFoundError, match=r"no process runs .*/proj/app\.py"):
        pm.stop("./app.py")


def test_a_bare_name_stays_a_name_even_beside_a_file_of_that_name(pm, tmp_path, monkeypatch):
    proj = app_dir(tmp_path, "proj")
    (proj / "web").write_text("not the app\n")
    (proj / "web.py").write_text("not the app either\n")
    pm.start(str(proj / "app.py"), {"name": "web"})
    online(pm, "web")
    monkeypatch.chdir(proj)
    assert [i.name for i in pm.stop("web")] == ["web"]
    assert [i.name for i in pm.restart(0)] == ["web"]
    online(pm, "web")
    corral("stop", "all", cwd=proj)
    assert [i.status for i in pm.list()] == ["stopped"]


# -- a config file is a target for every command -----------------------------------


def test_delete_of_a_config_file_deletes_exactly_its_apps(pm, tmp_path):
    proj = app_dir(tmp_path, "proj")
    (proj / "ecosystem.json").write_text(
        json.dumps(
            {
                "apps": [
                    {"name": "a", "script": "app.py"},
                    {"script": "app.py", "name": "b", "instances": 2},
                ]
            }
        )
    )
    pm.start(str(proj / "ecosystem.json"))
    pm.start(str(proj / "app.py"), {"name": "c"})
    online(pm, "a")
    online(pm, "b", 2)
    c_pid = online(pm, "c")[0].pid

    corral("stop", "ecosystem.json", cwd=proj)
    assert {i.name: i.status for i in pm.list()} == {"a": "stopped", "b": "stopped", "c": "online"}
    out = corral("describe", "ecosystem.json", cwd=proj).stdout
    assert "a" in out and "b" in out
    corral("delete", "ecosystem.json", cwd=proj)
    assert [(i.name, i.pid) for i in pm.list()] == [("c", c_pid)]
    again = corral("delete", "ecosystem.json", cwd=proj, check=False)
    assert again.returncode == 1
    assert "no app of" in again.stderr and "its apps: a, b" in again.stderr


def test_api_stop_of_a_config_file_stops_its_apps(pm, tmp_path, monkeypatch):
    proj = app_dir(tmp_path, "proj")
    (proj / "pm2.yaml").write_text("apps:\n  - script: app.py\n  - name: two\n    script: app.py\n")
    pm.start(str(proj / "app.py"), {"name": "other"})
    monkeypatch.chdir(proj)
    pm.start("pm2.yaml")
    online(pm, "app")  # no name: the script's
    online(pm, "two")
    assert sorted(i.name for i in pm.stop("pm2.yaml")) == ["app", "two"]
    assert online(pm, "other")


# -- identity: a name when given, else the script ---------------------------------


def test_start_of_another_script_with_a_taken_name_is_refused_and_changes_nothing(pm, tmp_path):
    first = app_dir(tmp_path, "one", "worker.py")
    second = app_dir(tmp_path, "two", "worker.py")
    corral("start", "worker.py", cwd=first)
    online(pm, "worker")
    pm.stop("worker")

    refused = corral("start", "worker.py", cwd=second, check=False)
    assert refused.returncode == 1
    assert str(first / "worker.py") in refused.stderr
    assert str(second / "worker.py") in refused.stderr
    assert "--name" in refused.stderr
    [info] = pm.list()
    assert info.status == "stopped"
    assert info.pm2_env["pm_exec_path"] == str(first / "worker.py")

    pm.restart("worker")
    pid = online(pm, "worker")[0].pid
    assert corral("start", "worker.py", cwd=second, check=False).returncode == 1
    [info] = pm.list()
    assert (info.pid, info.pm2_env["pm_exec_path"]) == (pid, str(first / "worker.py"))

    corral("start", "worker.py", "--name", "worker-two", cwd=second)
    assert online(pm, "worker-two")[0].pm2_env["pm_exec_path"] == str(second / "worker.py")
    assert online(pm, "worker")[0].pid == pid


def test_api_start_of_another_script_with_a_taken_name_raises(pm, tmp_path):
    first = app_dir(tmp_path, "one", "job.py")
    second = app_dir(tmp_path, "two", "job.py")
    pm.start(str(first / "job.py"))
    pid = online(pm, "job")[0].pid
    with pytest.raises(StateError, match=r"already exists with script .*one/job\.py"):
        pm.start(str(second / "job.py"))
    assert [(i.name, i.pid) for i in pm.list()] == [("job", pid)]


def test_start_of_a_command_with_name_starts_a_new_app(pm, tmp_path):
    corral("start", "sleep", "--", "300", cwd=tmp_path)
    sleep_pid = online(pm, "sleep")[0].pid
    pm.stop("sleep")

    corral("start", "sleep", "--name", "web", "--", "100", cwd=tmp_path)
    web = online(pm, "web")[0]
    assert web.pm2_env["args"] == ["100"]
    infos = by_name(pm)
    assert infos["sleep"][0].status == "stopped"  # not restarted
    assert sleep_pid != web.pid


def test_start_of_a_script_with_name_leaves_the_app_of_its_script_name(pm, tmp_path):
    proj = app_dir(tmp_path, "proj", "sleeper.py")
    corral("start", "sleeper.py", cwd=proj)
    pid = online(pm, "sleeper")[0].pid
    corral("start", "sleeper.py", "--name", "web", "--", "100", cwd=proj)
    assert online(pm, "web")[0].pm2_env["args"] == ["100"]
    assert online(pm, "sleeper")[0].pid == pid


def test_a_remote_client_sends_absolute_paths_and_refuses_relative_ones(tmp_path, monkeypatch):
    from corral.client.targets import resolve
    from corral.errors import CorralError

    app_dir(tmp_path, "proj")
    monkeypatch.chdir(tmp_path / "proj")
    assert resolve("./app.py") == {"given": "./app.py", "path": str(tmp_path / "proj/app.py")}
    assert resolve("app.py", remote=True) == "app.py"  # a name there, as written
    assert resolve("/srv/app.py", remote=True) == {"given": "/srv/app.py", "path": "/srv/app.py"}
    with pytest.raises(CorralError, match="relative path of this machine"):
        resolve("./app.py", remote=True)
    assert resolve(["web", 3, "all"]) == ["web", 3, "all"]
