"""PM2 test/e2e/cli/startOrX.sh: startOrRestart / startOrReload on a JSON file."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_start_or_restart_then_reload(cli: Corral) -> None:
    """startOrX.sh:10-20: startOrRestart starts 6; again: restart_time 1; startOrReload:
    restart_time 2."""
    cli.run("startOrRestart", "all.json")
    cli.should("status", "online", 6)
    cli.run("startOrRestart", "all.json")
    cli.should("restart_time", 1, 6)
    cli.run("startOrReload", "all.json")
    cli.should("restart_time", 2, 6)
