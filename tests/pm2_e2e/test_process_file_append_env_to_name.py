"""PM2 test/e2e/process-file/append-env-to-name.sh: append_env_to_name with --env."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_env_appended_to_name(cli: Corral) -> None:
    """append-env-to-name.sh:10-14: --env dev starts web-dev; --env prod then starts
    web-prod beside it."""
    proc = cli.run("start", "append-env-to-name.json", "--env", "dev")
    assert "append_env_to_name" not in proc.stdout + proc.stderr  # not "ignored"
    cli.should("name", "web-dev", 1)
    cli.run("start", "append-env-to-name.json", "--env", "prod")
    cli.should("name", "web-prod", 1)
    cli.should("name", "web-dev", 1)
