"""PM2 test/e2e/cli/piped-config.sh: a config file on stdin (`-`)."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_start_and_delete_from_stdin(cli: Corral) -> None:
    """piped-config.sh:11-15: `cat all.json | pm2 start -` starts 6, `| pm2 delete -`
    deletes them."""
    config = (cli.workdir / "all.json").read_text()
    cli.run("start", "-", stdin=config)
    cli.should("status", "online", 6)
    cli.run("delete", "-", stdin=config)
    cli.wait(lambda procs: procs == [], "none left")
