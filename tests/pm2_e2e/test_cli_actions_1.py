"""PM2 test/e2e/cli/cli-actions-1.sh: stop by id/name, describe, pid files, json files,
dump and resurrect, delete all. The sections run in order on one daemon, as PM2's do."""

from __future__ import annotations

import json

import pytest

from tests.pm2_e2e.conftest import Corral


def test_stop_by_id_and_name(cli: Corral) -> None:
    """cli-actions-1.sh:21-38: three copies (-f); stop an unknown id, id 0, a bad name, then
    by name: all three stopped."""
    cli.kill()
    cli.run("start", "echo.js")
    cli.run("start", "echo.js", "-f")
    cli.run("start", "echo.js", "-f")
    cli.should("status", "online", 3)
    cli.run("stop", "12412", ok=False)
    cli.run("stop", "0")
    cli.should("status", "stopped", 1)
    cli.run("stop", "asdsdaecho.js", ok=False)
    cli.run("stop", "echo")
    cli.should("status", "stopped", 3)


def test_describe(cli: Corral) -> None:
    """cli-actions-1.sh:44-53: describe a stopped and an online process; an unknown one
    exits non-zero."""
    cli.run("describe", "0")
    cli.run("restart", "1")
    cli.run("describe", "1")
    cli.run("describe", "asdsa", ok=False)


def test_update_pm2(cli: Corral) -> None:
    """cli-actions-1.sh:58-59: `updatePM2` replaces the daemon in memory; the apps stay
    (corral: handed over in place, same pids, same pm_ids)."""
    before = {p["pm_id"]: (p["name"], p["pid"]) for p in cli.jlist()}
    assert before
    cli.run("updatePM2")
    assert {p["pm_id"]: (p["name"], p["pid"]) for p in cli.jlist()} == before


@pytest.mark.parametrize("instances", [[], ["-i", "1"]], ids=["fork", "cluster"])
def test_pid_file(cli: Corral, instances: list[str]) -> None:
    """cli-actions-1.sh:68-79 (fork) and 83-95 (-i 1): --pid echo.pid writes echo-0.pid,
    removed once stopped."""
    cli.kill()
    pid_file = cli.workdir / "echo-0.pid"
    cli.run("start", "echo.js", "--pid", "echo.pid", *instances)
    cli.should("status", "online", 1)
    assert pid_file.read_text().strip() == str(cli.jlist()[0]["pid"])
    cli.run("stop", "all")
    cli.should("status", "stopped", 1)
    assert not pid_file.exists()
    cli.kill()


def test_missing_script_fails(cli: Corral) -> None:
    """cli-actions-1.sh:110-111: starting a script that does not exist fails."""
    cli.kill()
    proc = cli.run("start", "eyayimfake", ok=False)
    assert "eyayimfake" in proc.stderr


def test_no_argument_fails(cli: Corral) -> None:
    """cli-actions-1.sh:113-114: `pm2` with no argument exits non-zero (after its usage)."""
    proc = cli.run(ok=False)
    assert "Usage" in proc.stdout + proc.stderr


def test_json_app_object(cli: Corral) -> None:
    """cli-actions-1.sh:118-122: a JSON file holding one app object (4 instances, env_test).

    Deliberate difference: PM2's fixture carries a key no version of PM2 defines ("max");
    PM2 ignores unknown keys, corral refuses the file naming the key, and starts nothing.
    The same file without it starts.
    """
    proc = cli.run("start", "cluster-pm2.json", ok=False)
    assert "'max'" in proc.stderr
    assert cli.jlist() == []
    app = json.loads((cli.workdir / "cluster-pm2.json").read_text())
    del app["max"]
    (cli.workdir / "cluster-pm2.json").write_text(json.dumps(app))
    cli.run("start", "cluster-pm2.json")
    cli.should("status", "online", 4)
    cli.run("ls")


def test_json_two_apps(cli: Corral) -> None:
    """cli-actions-1.sh:125-126: a JSON list of two apps (again with PM2's stray "max";
    see test_json_app_object)."""
    path = cli.workdir / "multi-echo.json"
    cli.run("start", "multi-echo.json", ok=False)
    apps = json.loads(path.read_text())
    path.write_text(json.dumps([{k: v for k, v in a.items() if k != "max"} for a in apps]))
    cli.run("start", "multi-echo.json")
    cli.should("status", "online", 6)


def test_init(cli: Corral) -> None:
    """cli-actions-1.sh:128-129: `pm2 init echo` (a mode word, not a file name) writes the
    sample ecosystem.config.js, which then starts."""
    sample = cli.workdir / "ecosystem.config.js"
    sample.unlink(missing_ok=True)
    app = cli.workdir / "app.py"  # the script the sample names
    assert not app.exists()
    cli.run("init", "echo")
    assert sample.is_file()
    app.write_text("")
    try:
        cli.run("start", str(sample), "--dry-run")
    finally:
        sample.unlink()
        app.unlink()


def test_json_forced_copy(cli: Corral) -> None:
    """cli-actions-1.sh:131-132: a JSON app started with -f (its stray "options" key
    refused as in test_json_app_object)."""
    path = cli.workdir / "echo-pm2.json"
    proc = cli.run("start", "echo-pm2.json", "-f", ok=False)
    assert "'options'" in proc.stderr
    path.write_text(json.dumps({"name": "echo", "script": "echo.js"}))
    cli.run("start", "echo-pm2.json", "-f")
    cli.should("status", "online", 7)


def test_dump_and_stop_all(cli: Corral) -> None:
    """cli-actions-1.sh:202-220: dump, save (its alias), the dump file, stop all: 8 stopped."""
    cli.run("start", "echo-env.js")
    cli.run("dump")
    cli.run("save")
    assert (cli.home / "dump.corral").exists()
    cli.run("stop", "all")
    cli.should("status", "stopped", 8)


def test_restart_by_name(cli: Corral) -> None:
    """cli-actions-1.sh:229-236 (#71): after kill, --name ECHONEST, restart it by name."""
    cli.kill()
    cli.run("start", "echo.js", "--name", "ECHONEST", "-f")
    cli.should("name", "ECHONEST", 1)
    cli.run("restart", "ECHONEST")
    cli.should("restart_time", 1, 1)


def test_resurrect_after_kill(cli: Corral) -> None:
    """cli-actions-1.sh:240-246: kill, resurrect: the 8 dumped processes are back."""
    cli.kill()
    cli.run("resurrect")
    cli.wait(lambda procs: len(procs) == 8, "8 resurrected processes")


def test_delete_all(cli: Corral) -> None:
    """cli-actions-1.sh:250-257: delete all leaves none; kill stops the daemon."""
    cli.run("delete", "all")
    cli.wait(lambda procs: procs == [], "no process")
    cli.run("kill")
