"""PM2 test/e2e/cli/resurrect.sh: resurrect from the dump, from the .bak when the dump is
broken or missing."""

from __future__ import annotations

import json

from tests.pm2_e2e.conftest import Corral


def test_resurrect_from_dump(cli: Corral) -> None:
    """resurrect.sh:7-14: save then resurrect with the 4 apps running: still 4 online."""
    cli.run("start", "echo.js", "-i", "4")
    cli.should("status", "online", 4)
    cli.run("save")
    cli.run("resurrect")
    cli.should("status", "online", 4)


def test_resurrect_from_backup_if_dump_broken(cli: Corral) -> None:
    """resurrect.sh:16-23: a broken dump: resurrect uses the .bak and the broken dump is
    moved away; 4 online."""
    cli.run("save")
    cli.delete_all()
    (cli.home / "dump.corral").write_text("[{\n")
    cli.run("resurrect")
    assert not (cli.home / "dump.corral").exists()
    assert [p.read_text() for p in cli.home.glob("dump.corral.broken-*")] == ["[{\n"]
    cli.should("status", "online", 4)


def test_resurrect_from_backup_if_dump_missing(cli: Corral) -> None:
    """resurrect.sh:25-28: no dump at all: resurrect uses the .bak; 4 online."""
    cli.delete_all()
    (cli.home / "dump.corral").unlink(missing_ok=True)
    cli.run("resurrect")
    cli.should("status", "online", 4)


def test_save_over_a_broken_dump_keeps_the_backup(cli: Corral) -> None:
    """Not in resurrect.sh (issue 12, point 7): a save while the dump is broken moves the
    broken dump aside instead of renaming it over the good .bak."""
    cli.run("save")
    cli.run("save")
    dump, bak = cli.home / "dump.corral", cli.home / "dump.corral.bak"
    dump.write_text("[{\n")
    cli.run("save")
    assert len(json.loads(bak.read_text())["apps"]) == 4
    assert len(json.loads(dump.read_text())["apps"]) == 4
    assert "[{\n" in [p.read_text() for p in cli.home.glob("dump.corral.broken-*")]
