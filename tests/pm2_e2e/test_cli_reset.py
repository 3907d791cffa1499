"""PM2 test/e2e/cli/reset.sh: `pm2 reset` zeroes restart counters; --restart-delay."""

from __future__ import annotations

import pytest

from tests.pm2_e2e.conftest import Corral


@pytest.mark.parametrize("target", ["0", "echo", "all"])
def test_reset(cli: Corral, target: str) -> None:
    """reset.sh:14-21 (by id), 26-33 (by name), 39-45 (all): reset sets restart_time 0."""
    cli.delete_all()
    cli.run("start", "echo.js")
    cli.run("restart", "0")
    cli.should("restart_time", 1, 1)
    cli.run("reset", target)
    cli.should("restart_time", 0, 1)


def test_restart_delay(cli: Corral) -> None:
    """reset.sh:51-53: a crashing app with --restart-delay 5000 is not restarted yet.
    (`--no-wait`: corral's start watches the app for min_uptime and exits 1 when it
    dies at once, README "a start that fails"; PM2 exits 0.)
    """
    cli.delete_all()
    cli.run("start", "--no-wait", "killtoofast.js", "--restart-delay", "5000")
    cli.wait(lambda p: p and p[0]["pm2_env"]["status"] != "online", "the first crash")
    cli.should("restart_time", 0, 1)
