"""Starting a config file again brings its apps in line with it
(corral.daemon.commands.reconcile), as supervisord's ``update``: real daemons, real
processes, the CLI in the file's folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from corral.daemon.apps import PreparedApp
from corral.daemon.commands.reconcile import Current, plan
from corral.errors import OptionError, StateError
from tests.conftest import APPS, wait_for
from tests.conftest import run_cli as corral

SLEEPER = APPS / "sleeper.py"


def write(folder: Path, apps: list[dict]) -> Path:
    path = folder / "ecosystem.json"
    path.write_text(json.dumps({"apps": apps}))
    return path


def state(pm) -> dict[str, list[tuple]]:
    """By name: (pm_id, pid, status, script, kill_timeout) of each instance."""
    found: dict[str, list[tuple]] = {}
    for i in pm.list():
        env = i.pm2_env
        found.setdefault(i.name, []).append(
            (i.pm_id, i.pid, i.status, env["pm_exec_path"], env.get("kill_timeout"))
        )
    return found


def settled(pm, counts: dict[str, int]) -> dict[str, list[tuple]]:
    def ready():
        now = state(pm)
        if {n: len(v) for n, v in now.items()} != counts:
            return None
        if all(s == "online" and pid for v in now.values() for _, pid, s, _, _ in v):
            return now
        return None

    return wait_for(ready, timeout=20, what=f"apps {counts} online")


V1 = [
    {"name": "keep", "script": "app.py"},
    {"name": "opt", "script": "app.py", "kill_timeout": 1000},
    {"name": "scal", "script": "app.py"},
    {"name": "scr", "script": "app.py"},
    {"name": "gone", "script": "app.py"},
]
V2 = [
    {"name": "keep", "script": "app.py"},
    {"name": "opt", "script": "app.py", "kill_timeout": 2000},
    {"name": "scal", "script": "app.py", "instances": 3},
    {"name": "scr", "script": "other.py"},
    {"name": "new", "script": "app.py"},
]
V1_COUNTS = {"keep": 1, "opt": 1, "scal": 1, "scr": 1, "gone": 1}
V2_COUNTS = {"keep": 1, "opt": 1, "scal": 3, "scr": 1, "gone": 1, "new": 1}


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir()
    shutil.copy(SLEEPER, folder / "app.py")
    shutil.copy(SLEEPER, folder / "other.py")
    return folder


def test_start_of_a_changed_file_brings_each_app_in_line_and_says_so(pm, proj):
    write(proj, V1)
    first = corral("start", "ecosystem.json", cwd=proj).stdout
    assert "keep: started (1 instance)" in first
    before = settled(pm, V1_COUNTS)
    write(proj, V2)

    dry = corral("start", "ecosystem.json", "--dry-run", cwd=proj).stdout
    assert "dry run" in dry
    for line in (
        "keep: unchanged-restarted",
        "opt: restarted (changed: kill_timeout)",
        "scal: scaled 1->3, restarted",
        f"scr: replaced ({proj / 'app.py'} -> {proj / 'other.py'})",
        "new: started (1 instance)",
        "gone: left alone",
    ):
        assert line in dry, dry
    assert state(pm) == before  # the dry run changed nothing

    out = corral("start", "ecosystem.json", cwd=proj).stdout
    assert "scal: scaled 1->3, restarted\n" in out and "new: started" in out
    after = settled(pm, V2_COUNTS)
    assert after["keep"][0][1] != before["keep"][0][1]  # restarted, as PM2 does
    assert after["opt"][0][4] == 2000
    assert after["scr"][0][3] == str(proj / "other.py")
    assert after["gone"] == before["gone"]  # not in the file: left alone

    pruned = corral("startOrRestart", "ecosystem.json", "--prune", cwd=proj).stdout
    assert "gone: deleted" in pruned
    assert "gone" not in settled(pm, {k: v for k, v in V2_COUNTS.items() if k != "gone"})


def test_prune_never_deletes_an_app_the_file_did_not_start(pm, proj):
    write(proj, [{"name": "a", "script": "app.py"}])
    corral("start", "ecosystem.json", cwd=proj)
    pm.start(str(proj / "other.py"), {"name": "mine"})
    mine = settled(pm, {"a": 1, "mine": 1})["mine"]
    out = corral("startOrRestart", "ecosystem.json", "--prune", cwd=proj).stdout
    assert "mine:" not in out
    assert settled(pm, {"a": 1, "mine": 1})["mine"] == mine


def test_start_or_reload_reloads_unchanged_apps_and_shrinks(pm, proj, monkeypatch):
    monkeypatch.chdir(proj)  # the apps' cwd is the caller's, as PM2's: the same as the CLI's
    path = write(proj, [{"name": "w", "script": "app.py", "instances": 3}])
    result = pm.start_or_reload(str(path))
    assert result.lines == ["w: started (3 instances)"]
    before = settled(pm, {"w": 3})
    write(proj, [{"name": "w", "script": "app.py", "instances": 2}])
    result = pm.start_or_reload(str(path))
    assert result.lines == ["w: scaled 3->2, reloaded"]
    after = settled(pm, {"w": 2})
    assert [i[0] for i in after["w"]] == [i[0] for i in before["w"][:2]]
    assert pm.start_or_reload(str(path)).lines == ["w: unchanged-reloaded"]
    out = corral("startOrGracefulReload", "ecosystem.json", "--dry-run", cwd=proj).stdout
    assert "w: unchanged-gracefully reloaded" in out


def test_restart_of_a_config_file_is_start_or_restart(pm, proj):
    write(proj, [{"name": "a", "script": "app.py"}])
    out = corral("restart", "ecosystem.json", cwd=proj).stdout
    assert "a: started (1 instance)" in out  # PM2 starts the file's apps not running
    pid = settled(pm, {"a": 1})["a"][0][1]
    out = corral("restart", "ecosystem.json", cwd=proj).stdout
    assert "a: unchanged-restarted" in out
    assert settled(pm, {"a": 1})["a"][0][1] != pid


def test_an_unnamed_app_of_a_file_does_not_take_over_another_script(pm, proj, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(SLEEPER, elsewhere / "app.py")
    pm.start(str(elsewhere / "app.py"))
    before = settled(pm, {"app": 1})
    write(proj, [{"script": "app.py"}])
    refused = corral("start", "ecosystem.json", cwd=proj, check=False)
    assert refused.returncode == 1
    assert str(elsewhere / "app.py") in refused.stderr and str(proj / "app.py") in refused.stderr
    assert state(pm) == before
    with pytest.raises(StateError, match="--name"):
        pm.start_or_restart(str(proj / "ecosystem.json"))


# -- the plan alone ---------------------------------------------------------------


def _app(name: str, count: int = 1, script: str = "/a.py", **options) -> PreparedApp:
    return PreparedApp(name, {"name": name, **options}, {}, script, "python3", False, count)


def _now(name: str, count: int = 1, script: str = "/a.py", source=None, **options) -> Current:
    return Current(name, {"name": name, **options}, script, "python3", False, count, source)


def test_plan_is_pure_and_covers_every_case():
    steps = plan(
        [
            _app("new"),
            _app("same", kill_timeout=1),
            _app("opt", kill_timeout=2),
            _app("more", 4),
            _app("moved", script="/b.py"),
            _app("mode", exec_mode="cluster"),
        ],
        [
            _now("same", kill_timeout=1),
            _now("opt", kill_timeout=1),
            _now("more", 2),
            _now("moved"),
            _now("mode", exec_mode="fork"),
            _now("old", source="/f.json"),
            _now("foreign"),
        ],
        config_file="/f.json",
    )
    assert [(s.name, s.kind) for s in steps] == [
        ("new", "start"),
        ("same", "unchanged"),
        ("opt", "change"),
        ("more", "scale"),
        ("moved", "replace"),
        ("mode", "replace"),
        ("old", "keep"),
    ]
    assert [s.line("reload", "f.json") for s in steps][-1] == (
        "old: left alone (no longer in f.json; --prune deletes it)"
    )
    pruned = plan([], [_now("old", source="/f.json")], config_file="/f.json", prune=True)
    assert [s.kind for s in pruned] == ["delete"]
    with pytest.raises(OptionError, match="two apps are named"):
        plan([_app("x"), _app("x")], [])


def test_restart_of_a_config_file_applies_its_env_name(pm, proj):
    write(
        proj,
        [
            {
                "name": "a",
                "script": "app.py",
                "env": {"GREETING": "dev"},
                "env_production": {"GREETING": "prod"},
            }
        ],
    )
    corral("start", "ecosystem.json", cwd=proj)
    assert settled(pm, {"a": 1})
    assert pm.describe("a")[0].env["GREETING"] == "dev"
    out = corral("restart", "ecosystem.json", "--env", "production", cwd=proj).stdout
    assert "a: unchanged-restarted" in out
    assert pm.describe("a")[0].env["GREETING"] == "prod"
    refused = corral("restart", "a", "--env", "production", cwd=proj, check=False)
    assert refused.returncode == 1 and "applies to a config file" in refused.stderr


def test_the_file_an_app_came_from_survives_dump_and_resurrect(pm, proj):
    write(proj, [{"name": "a", "script": "app.py"}, {"name": "b", "script": "app.py"}])
    corral("start", "ecosystem.json", cwd=proj)
    settled(pm, {"a": 1, "b": 1})
    corral("dump", cwd=proj)
    corral("kill", cwd=proj)
    corral("resurrect", cwd=proj)
    settled(pm, {"a": 1, "b": 1})
    write(proj, [{"name": "a", "script": "app.py"}])
    out = corral("startOrRestart", "ecosystem.json", "--prune", cwd=proj).stdout
    assert "b: deleted" in out
    settled(pm, {"a": 1})


def test_a_new_version_that_cannot_be_made_leaves_the_old_one_running(pm, proj, tmp_path):
    write(proj, [{"name": "r", "script": "app.py"}])
    corral("start", "ecosystem.json", cwd=proj)
    before = settled(pm, {"r": 1})
    target = tmp_path / "real.log"
    target.write_text("")
    (tmp_path / "link.log").symlink_to(target)  # corral never opens a log through a link
    write(
        proj,
        [
            {"name": "r", "script": "other.py", "out_file": str(tmp_path / "link.log")},
            {"name": "n", "script": "app.py"},
        ],
    )
    refused = corral("start", "ecosystem.json", cwd=proj, check=False)
    assert refused.returncode == 1 and "symbolic link" in refused.stderr
    assert state(pm) == before  # the old version still runs, the new app was not made
