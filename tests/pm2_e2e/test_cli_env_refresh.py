"""PM2 test/e2e/cli/env-refresh.sh: the environment is kept on restart/reload, refreshed
with --update-env, from JSON env, and NODE_PATH reaches node's global paths."""

from __future__ import annotations

import time

import pytest

from corral.testing import wait_for
from tests.pm2_e2e.conftest import SLOW, Corral, read, wait_text


def _fresh(cli: Corral) -> None:
    (cli.workdir / "out-env.log").write_text("")


def _only(cli: Corral, wanted: str, unwanted: str) -> None:
    """The new instance prints ``wanted`` and never ``unwanted``: once it has printed,
    the log is emptied (lines of the old instance still in the pipe are gone) and read
    again."""
    wait_text(cli.workdir / "out-env.log", wanted)
    _fresh(cli)
    wait_text(cli.workdir / "out-env.log", wanted)
    assert unwanted not in read(cli.workdir / "out-env.log")


def test_restart_update_env(cli: Corral) -> None:
    """env-refresh.sh:12-29: the caller's TEST_VARIABLE at start; restart --update-env takes
    the new one; a plain restart keeps it."""
    cli.run(
        "start", "env.js", "-o", "out-env.log", "--merge-logs", "--name", "env",
        env={"TEST_VARIABLE": "hello1"},
    )  # fmt: skip
    wait_text(cli.workdir / "out-env.log", "hello1")
    cli.run("restart", "env", "--update-env", env={"TEST_VARIABLE": "89hello89"})
    _only(cli, "89hello89", "hello1\n")
    cli.should("restart_time", 1, 1)
    cli.run("restart", "env", env={"TEST_VARIABLE": "CLUNEWSTER"})
    cli.should("restart_time", 2, 1)
    _only(cli, "89hello89", "CLUNEWSTER")
    cli.delete_all()


def test_reload_update_env(cli: Corral) -> None:
    """env-refresh.sh:36-52: unset at start ('undefined'); reload --update-env takes the
    caller's; a plain reload keeps it."""
    _fresh(cli)
    cli.run("start", "env.js", "-o", "out-env.log", "--merge-logs")
    wait_text(cli.workdir / "out-env.log", "undefined")
    cli.run("reload", "env", "--update-env", env={"TEST_VARIABLE": "CLUSTER"})
    _only(cli, "CLUSTER", "undefined")
    cli.run("reload", "env", env={"TEST_VARIABLE": "CLUNEWSTER"})
    cli.should("restart_time", 2, 1)
    _only(cli, "CLUSTER", "CLUNEWSTER")


def test_env_from_json(cli: Corral) -> None:
    """env-refresh.sh:58-63: env.json's env reaches the app."""
    cli.delete_all()
    _fresh(cli)
    cli.run("start", "env.json")
    wait_text(cli.workdir / "out-env.log", "YES")


def test_restart_with_refreshed_json(cli: Corral) -> None:
    """env-refresh.sh:66-70: restart env-refreshed.json: its env (an object value, given to
    the app as JSON) replaces the old one."""
    cli.run("restart", "env-refreshed.json")
    _fresh(cli)
    wait_text(cli.workdir / "out-env.log", '{"HEYYYY":true}')


@pytest.mark.skip(reason="out of scope: the deploy section (`pm2 deploy`) and its env")
def test_deploy_env(cli: Corral) -> None:
    """env-refresh.sh:74-79: --env production takes deploy.production.env."""


def _stays_up(cli: Corral) -> None:
    """Online for longer than min_uptime (1 s) without a restart."""
    cli.should("status", "online", 1)
    started = cli.jlist()[0]["pm2_env"]["pm_uptime"] / 1000
    wait_for(lambda: time.time() - started > 1.5, SLOW, "1.5 s of uptime", interval=0.1)
    cli.should("restart_time", 0, 1)


@pytest.mark.parametrize(("node_path", "extra"), [("/test", []), ("/test2", ["-i", "1"])])
def test_node_path_in_global_paths(cli: Corral, node_path: str, extra: list[str]) -> None:
    """env-refresh.sh:86-88 (fork) and 91-93 (-i 1): the caller's NODE_PATH is one of
    node's global module paths (the app exits otherwise)."""
    cli.kill()
    cli.run("start", "local_require.js", *extra, env={"NODE_PATH": node_path})
    _stays_up(cli)
