"""PM2 test/e2e/cli/right-exit-code.sh: acting on nothing exits non-zero."""

from __future__ import annotations

import pytest

from tests.pm2_e2e.conftest import Corral


@pytest.mark.parametrize(
    ("command", "target"),
    [
        ("restart", "BULLSHIT"),  # :10-11
        ("restart", "666"),  # :13-14
        ("delete", "10"),  # :22-23
        ("delete", "toto"),  # :25-26
    ],
)
def test_unknown_process_is_an_error(cli: Corral, command: str, target: str) -> None:
    """right-exit-code.sh:10-14, 22-26: an unknown name or id exits non-zero."""
    cli.run("ping")
    assert cli.jlist() == []
    proc = cli.run(command, target, ok=False)
    assert "no process matches" in proc.stderr


@pytest.mark.parametrize("command", ["restart", "stop"])
def test_all_of_nothing(cli: Corral, command: str) -> None:
    """right-exit-code.sh:16-20: `restart all` / `stop all` with no process.

    Deliberate difference: PM2 exits 1 ("No process found"); corral exits 0 and prints
    its empty-list hint, so `corral stop all` in a deploy script is idempotent on a fresh
    machine. A name or id that matches nothing is still an error (above).
    """
    cli.run("ping")
    assert cli.jlist() == []
    proc = cli.run(command, "all")
    assert "No process is managed yet" in proc.stdout
