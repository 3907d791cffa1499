"""PM2 test/e2e/cli/operate-regex.sh: /regex/ as a target."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_regex_targets(cli: Corral) -> None:
    """operate-regex.sh:8-26: stop /echo-[1,2]/ stops two, /echo-3/ the third, restart
    /echo-[1,2]/ brings two back."""
    for name in ("echo-3", "echo-1", "echo-2"):
        cli.run("start", "echo.js", "--name", name)
    cli.should("status", "online", 3)
    cli.run("stop", "/echo-[1,2]/")
    cli.should("status", "stopped", 2)
    cli.should("status", "online", 1)
    cli.run("stop", "/echo-3/")
    cli.should("status", "online", 0)
    cli.run("restart", "/echo-[1,2]/")
    cli.should("status", "online", 2)
