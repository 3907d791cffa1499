"""PM2 test/e2e/cli/fork.sh: fork mode, a shell script, dump/resurrect keep fork mode."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_fork_mode_restart_by_script(cli: Corral) -> None:
    """fork.sh:9-13: -x (fork mode), restart by script file: restart_time 1."""
    cli.run("start", "echo.js", "-x", "fork")
    cli.should("exec_mode", "fork_mode", 1)
    cli.run("restart", "echo.js")
    cli.should("restart_time", 1, 1)


def test_shell_script_fork_dump_resurrect_delete(cli: Corral) -> None:
    """fork.sh:16-38: a .sh script runs in fork mode, and still does after dump, kill,
    resurrect; delete 0 removes it."""
    cli.kill()
    cli.run("start", "bashscript.sh")
    cli.should("exec_mode", "fork_mode", 1)
    cli.should("status", "online", 1)
    cli.run("dump")
    cli.kill()
    cli.run("resurrect")
    cli.should("exec_mode", "fork_mode", 1)
    cli.run("ls")
    pm_id = cli.jlist()[0]["pm_id"]
    cli.run("delete", str(pm_id))
    cli.should("exec_mode", "fork_mode", 0)
