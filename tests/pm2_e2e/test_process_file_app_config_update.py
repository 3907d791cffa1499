"""PM2 test/e2e/process-file/app-config-update.sh: options changed on restart/reload (from
a JSON file or the CLI) apply, and names can change."""

from __future__ import annotations

from tests.pm2_e2e.conftest import MISSING_CLI, Corral, gap

RENAME = "renaming an app by `start ID --name NEW` (a restart cannot change the name yet)"


def _node_args(cli: Corral) -> list[list[str]]:
    return [p["pm2_env"]["node_args"] for p in cli.jlist()]


def test_node_args_from_changed_json(cli: Corral) -> None:
    """app-config-update.sh:13-19: args1.json (node_args ""): []; restart args2.json
    (node_args --harmony): ['--harmony']."""
    cli.kill()
    cli.run("start", "app-config-update/args1.json")
    assert _node_args(cli) == [[]]
    cli.run("restart", "app-config-update/args2.json")
    assert _node_args(cli) == [["--harmony"]]


def test_node_args_on_restart(cli: Corral) -> None:
    """app-config-update.sh:23-29: start echo.js ([]), restart it with --node-args."""
    cli.delete_all()
    cli.run("start", "app-config-update/echo.js")
    assert _node_args(cli) == [[]]
    cli.run("restart", "app-config-update/echo.js", "--node-args=--harmony")
    assert _node_args(cli) == [["--harmony"]]


def test_node_args_on_start_by_name(cli: Corral) -> None:
    """app-config-update.sh:32-34: `start echo --node-args=--harmony` on the running app
    restarts it with the new node_args."""
    cli.delete_all()
    cli.run("start", "app-config-update/echo.js")
    cli.run("start", "echo", "--node-args=--harmony")
    assert _node_args(cli) == [["--harmony"]]


@gap(f"{MISSING_CLI}: `restart --name` / `pm2 reset`")
def test_rename_on_restart(cli: Corral) -> None:
    """app-config-update.sh:39-42: restart 0 --name new-name renames the app."""
    cli.run("restart", "0", "--name=new-name")
    cli.should("name", "new-name", 1)


@gap(RENAME)
def test_rename_on_start(cli: Corral) -> None:
    """app-config-update.sh:44-47: start 0 --name new-name-2 renames the app."""
    cli.delete_all()
    cli.run("start", "app-config-update/echo.js")
    pm_id = cli.jlist()[0]["pm_id"]
    cli.run("start", str(pm_id), "--name=new-name-2")
    cli.should("name", "new-name-2", 1)


def test_cluster_reload_with_node_args(cli: Corral) -> None:
    """app-config-update.sh:53-67: -i 1; reload with --node-args=--harmony, then
    --node-args=null (removed)."""
    cli.delete_all()
    cli.run("start", "app-config-update/echo.js", "-i", "1")
    assert _node_args(cli) == [[]]
    cli.run("reload", "app-config-update/echo.js", "--node-args=--harmony")
    assert _node_args(cli) == [["--harmony"]]
    cli.run("reload", "app-config-update/echo.js", "--node-args=null")
    assert _node_args(cli) == [[]]


@gap(RENAME)
def test_cluster_reload_with_name(cli: Corral) -> None:
    """app-config-update.sh:69-72: reload echo --name new-name renames the app."""
    cli.delete_all()
    cli.run("start", "app-config-update/echo.js", "-i", "1")
    cli.run("reload", "echo", "--name=new-name")
    cli.should("name", "new-name", 1)
