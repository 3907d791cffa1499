"""PM2 test/e2e/cli/start-app.sh: a shell command as the app, from the CLI and from a JS
config (cmd), and a compile-and-run command."""

from __future__ import annotations

import shutil

import pytest

from tests.pm2_e2e.conftest import Corral, wait_text

COMMAND = "node -e 'setTimeout(function() { }, 100000); console.log(process.env.TEST)'"


def test_command_then_restart_update_env(cli: Corral) -> None:
    """start-app.sh:11-32: a command line starts (online, restart_time 0, TEST undefined);
    TEST=ok restart 0 --update-env prints ok, restart_time 1."""
    cli.delete_all()
    work = cli.workdir / "start-app"
    cli.run("start", COMMAND, "--log", "test.log", "--merge-logs", cwd=work)
    cli.should("status", "online", 1)
    cli.should("restart_time", 0, 1)
    wait_text(work / "test.log", "undefined")
    pm_id = cli.jlist()[0]["pm_id"]
    cli.run("restart", str(pm_id), "--update-env", env={"TEST": "ok"}, cwd=work)
    wait_text(work / "test.log", "ok")
    cli.should("status", "online", 1)
    cli.should("restart_time", 1, 1)


def test_command_from_js_config(cli: Corral) -> None:
    """start-app.sh:37-48: ecosystem.config.js with `cmd:` and env: online, prints test_val."""
    cli.delete_all()
    work = cli.workdir / "start-app"
    cli.run("start", "ecosystem.config.js", cwd=work)
    cli.should("status", "online", 1)
    cli.should("restart_time", 0, 1)
    wait_text(work / "test-conf.log", "test_val")


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler")
def test_compile_and_run(cli: Corral) -> None:
    """start-app.sh:53-57: "cc hello.c; ./a.out" runs through a shell: Hello World.
    (`--no-wait`: corral's start watches the app for min_uptime and exits 1 when it
    dies at once, README "a start that fails"; PM2 exits 0.)
    """
    work = cli.workdir / "c-compile"
    cli.run(
        "start", "--no-wait", "cc hello.c; ./a.out", "--log", "c-log.log", "--merge-logs", cwd=work
    )
    wait_text(work / "c-log.log", "Hello World")
    cli.delete_all()
