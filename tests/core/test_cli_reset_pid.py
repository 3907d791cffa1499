"""`corral reset`, `corral pid` and `/regex/` targets: their edges and refusals, on real
daemons (the PM2 scripts they port are in tests/pm2_e2e)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from corral.client.targets import resolve
from corral.daemon.selection import REGEX_MAX
from tests.conftest import run_cli as corral
from tests.conftest import wait_for

SLEEP = shutil.which("sleep") or "/bin/sleep"


def _sleeper(name: str) -> None:
    corral("start", SLEEP, "--name", name, "--", "3600")


def _status(pm: object) -> dict[str, str]:
    return {p.name: p.pm2_env["status"] for p in pm.list()}  # type: ignore[attr-defined]


def test_reset_of_an_unknown_name_fails_and_changes_nothing(pm: object) -> None:
    _sleeper("web")
    corral("restart", "web")
    assert pm.list()[0].pm2_env["restart_time"] == 1  # type: ignore[attr-defined]
    result = corral("reset", "nope", check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "nope" in line and "web" in line
    assert pm.list()[0].pm2_env["restart_time"] == 1  # type: ignore[attr-defined]


def test_reset_zeroes_unstable_restarts_and_restarts_created_at(pm: object, tmp_path: Path) -> None:
    """PM2's resetMetaProcessId: restart_time 0, unstable_restarts 0, created_at now."""
    crash = tmp_path / "crash.py"
    crash.write_text("raise SystemExit(3)\n")
    pm.start(  # type: ignore[attr-defined]
        str(crash),
        {"name": "crash", "min_uptime": 60000, "max_restarts": 1000, "restart_delay": 100},
    )
    wait_for(
        lambda: pm.list()[0].pm2_env["unstable_restarts"] >= 2,  # type: ignore[attr-defined]
        timeout=30,
    )
    before = pm.list()[0].pm2_env["created_at"]  # type: ignore[attr-defined]
    [info] = pm.reset("crash")  # type: ignore[attr-defined]
    assert info.pm2_env["restart_time"] == 0
    assert info.pm2_env["unstable_restarts"] == 0
    assert info.pm2_env["created_at"] > before


def test_pid_prints_running_instances_and_nothing_for_an_unknown_name(pm: object) -> None:
    _sleeper("a")
    _sleeper("b")
    corral("stop", "b")
    corral("start", SLEEP, "--name", "c", "-i", "2", "--", "3600")
    pids = {p.name: p.pid for p in pm.list() if p.pid}  # type: ignore[attr-defined]
    assert "b" not in pids
    assert corral("pid", "a").stdout == f"{pids['a']}\n"
    assert corral("pid", "b").stdout == ""  # stopped: no pid, as a script wants
    c_pids = sorted(p.pid for p in pm.list() if p.name == "c")  # type: ignore[attr-defined]
    assert sorted(int(x) for x in corral("pid", "c").stdout.split()) == c_pids
    everyone = sorted(int(x) for x in corral("pid").stdout.split())
    assert everyone == sorted([pids["a"], *c_pids])
    unknown = corral("pid", "nope")
    assert (unknown.returncode, unknown.stdout, unknown.stderr) == (0, "", "")  # PM2's getPID


def test_a_bad_regex_is_one_error_naming_it_and_stops_nothing(pm: object) -> None:
    _sleeper("echo-1")
    result = corral("stop", "/echo-[1/", check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "/echo-[1/" in line and "does not compile" in line
    assert _status(pm) == {"echo-1": "online"}


def test_an_overlong_regex_is_refused_before_compiling(pm: object) -> None:
    _sleeper("echo-1")
    result = corral("stop", "/" + "a" * (REGEX_MAX + 1) + "/", check=False)
    assert result.returncode == 1
    assert f"over {REGEX_MAX}" in result.stderr
    assert _status(pm) == {"echo-1": "online"}


def test_a_regex_that_matches_no_name_fails_and_stops_nothing(pm: object) -> None:
    _sleeper("echo-1")
    result = corral("stop", "/^web/", check=False)
    assert result.returncode == 1
    assert "no process name matches the regex '/^web/'" in result.stderr
    assert _status(pm) == {"echo-1": "online"}


def test_a_regex_searches_the_name_and_works_for_reset_and_delete(pm: object) -> None:
    for name in ("api-1", "api-2", "worker"):
        _sleeper(name)
    corral("restart", "/^api/")
    assert {p.name: p.pm2_env["restart_time"] for p in pm.list()} == {  # type: ignore[attr-defined]
        "api-1": 1,
        "api-2": 1,
        "worker": 0,
    }
    corral("reset", "/api-2$/")
    assert [p.pm2_env["restart_time"] for p in pm.list()] == [1, 0, 0]  # type: ignore[attr-defined]
    corral("delete", "/pi-/")
    assert [p.name for p in pm.list()] == ["worker"]  # type: ignore[attr-defined]


def test_a_regex_target_is_sent_as_written_even_to_a_remote_daemon() -> None:
    assert resolve("/echo-[1,2]/") == "/echo-[1,2]/"
    assert resolve("/echo-[1,2]/", remote=True) == "/echo-[1,2]/"
    assert resolve("/") == {"given": "/", "path": "/"}  # the root, not an empty regex


def test_reset_of_a_config_file_resets_its_apps_only(pm: object, tmp_path: Path) -> None:
    config = tmp_path / "ecosystem.json"
    app = {"name": "in-file", "script": SLEEP, "args": ["3600"]}
    config.write_text(json.dumps({"apps": [app]}))
    corral("start", str(config), cwd=tmp_path)
    _sleeper("outside")
    corral("restart", "all")
    corral("reset", "ecosystem.json", cwd=tmp_path)
    restarts = {p.name: p.pm2_env["restart_time"] for p in pm.list()}  # type: ignore[attr-defined]
    assert restarts == {"in-file": 0, "outside": 1}
