"""PM2 test/e2e/cli/multiparam.sh: several scripts or names in one command."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_start_several_scripts(cli: Corral) -> None:
    """multiparam.sh:9-10: start three scripts in one command."""
    cli.delete_all()
    cli.run("start", "child.js", "echo.js", "server.js")
    cli.should("status", "online", 3)


def test_restart_stop_delete_several_names(cli: Corral) -> None:
    """multiparam.sh:13-23: restart, stop and delete three apps named in one command."""
    cli.delete_all()
    for script in ("child.js", "echo.js", "server.js"):
        cli.run("start", script)
    cli.should("status", "online", 3)
    cli.run("restart", "child", "echo", "server")
    cli.should("status", "online", 3)
    cli.should("restart_time", 1, 3)
    cli.run("stop", "child", "echo", "server")
    cli.should("status", "stopped", 3)
    cli.run("delete", "child", "echo", "server")
    cli.wait(lambda procs: procs == [], "none left")
