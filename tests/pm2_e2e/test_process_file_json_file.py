"""PM2 test/e2e/process-file/json-file.sh: JSON files as targets of start, stop, restart,
reload and delete; the "pm2" key; a JSON file with comments; stdin; --only."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_pm2_key(cli: Corral) -> None:
    """json-file.sh:10-11: apps under "pm2" (as in a package.json), not "apps": 6 online."""
    cli.run("start", "pm2-ecosystem.json")
    cli.should("status", "online", 6)


def test_delete_file_after_pm2_key(cli: Corral) -> None:
    """json-file.sh:13-14: delete all.json deletes the same apps: none left."""
    cli.run("delete", "all.json")
    cli.wait(lambda procs: procs == [], "none left")


def test_start_stop_delete_file(cli: Corral) -> None:
    """json-file.sh:18-25: start all.json (6 online), stop all.json (6 stopped), delete
    all.json (none)."""
    cli.kill()
    cli.run("start", "all.json")
    cli.should("status", "online", 6)
    cli.run("stop", "all.json")
    cli.should("status", "stopped", 6)
    cli.run("delete", "all.json")
    cli.wait(lambda procs: procs == [], "none left")


def test_restart_reload_file(cli: Corral) -> None:
    """json-file.sh:27-37: start, restart all.json (each once), reload all.json (twice)."""
    cli.kill()
    cli.run("start", "all.json")
    cli.should("status", "online", 6)
    cli.run("restart", "all.json")
    cli.should("status", "online", 6)
    cli.should("restart_time", 1, 6)
    cli.run("reload", "all.json")
    cli.should("status", "online", 6)
    cli.should("restart_time", 2, 6)


def test_smart_restart(cli: Corral) -> None:
    """json-file.sh:42-52: start all.json on running apps restarts each once more; after
    stop all (PM2 stops all.json: the config-target gap), start all.json brings all 6 back."""
    cli.kill()
    cli.run("start", "all.json")
    cli.should("status", "online", 6)
    before = cli.restarts()
    cli.run("start", "all.json")
    cli.should("status", "online", 6)
    cli.restarted_once_more(before)
    cli.run("stop", "all")
    cli.should("status", "stopped", 6)
    cli.run("start", "all.json")
    cli.should("status", "online", 6)


def test_json_with_comments(cli: Corral) -> None:
    """json-file.sh:65-82: configuration.json with comments, unquoted keys and a trailing
    comma (PM2's own file also computes its script with a JS expression, which only PM2's
    eval of .json reads: left out): start, stop, delete, start, restart, delete by file."""
    cli.kill()
    cli.run("start", "configuration.json")
    cli.should("status", "online", 6)
    cli.run("stop", "configuration.json")
    cli.should("status", "stopped", 6)
    cli.run("delete", "configuration.json")
    cli.should("status", "online", 0)
    cli.run("start", "configuration.json")
    cli.should("status", "online", 6)
    cli.run("restart", "configuration.json")
    cli.should("restart_time", 1, 6)
    cli.run("delete", "configuration.json")
    cli.wait(lambda procs: procs == [], "none left")


def test_pipe(cli: Corral) -> None:
    """json-file.sh:86-89: `cat all.json | pm2 start -`: 6 online."""
    cli.kill()
    cli.run("start", "-", stdin=(cli.workdir / "all.json").read_text())
    cli.should("status", "online", 6)


def test_only(cli: Corral) -> None:
    """json-file.sh:95-114: --only echo (1), --only child (5), restart/reload/delete with
    --only, --only "echo,child"."""
    cli.kill()
    cli.run("start", "all.json", "--only", "echo")
    cli.should("status", "online", 1)
    cli.run("start", "all.json", "--only", "child")
    cli.should("status", "online", 5)
    cli.run("restart", "all.json", "--only", "child")
    cli.should("restart_time", 1, 4)
    cli.run("delete", "all.json", "--only", "echo")
    cli.should("status", "online", 4)
    cli.run("reload", "all.json", "--only", "child")
    cli.should("restart_time", 2, 4)
    cli.run("start", "all.json", "--only", "echo,child")
    cli.should("status", "online", 5)
