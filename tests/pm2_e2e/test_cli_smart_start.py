"""PM2 test/e2e/cli/smart-start.sh: `start NAME` and `start ID` restart an existing app."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_smart_start(cli: Corral) -> None:
    """smart-start.sh:13-29: start, stop, `start echo` (online; a stopped app's start is
    not a restart), `start echo` again (restart_time 1), `start 0` (restart_time 2)."""
    cli.run("start", "echo.js")
    cli.should("restart_time", 0, 1)
    cli.should("status", "online", 1)
    cli.run("stop", "echo")
    cli.should("status", "stopped", 1)
    cli.run("start", "echo")
    cli.should("status", "online", 1)
    cli.run("start", "echo")
    cli.should("restart_time", 1, 1)
    cli.should("status", "online", 1)
    cli.run("start", "0")
    cli.should("restart_time", 2, 1)
    cli.should("status", "online", 1)
