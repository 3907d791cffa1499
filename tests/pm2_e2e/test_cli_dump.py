"""PM2 test/e2e/cli/dump.sh: save writes the dump, a second save keeps a .bak."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_save_then_backup(cli: Corral) -> None:
    """dump.sh:7-24: -i 4 online; the first save writes the dump and no .bak; the second
    save keeps the previous dump as .bak."""
    cli.run("start", "echo.js", "-i", "4")
    cli.should("status", "online", 4)
    dump, bak = cli.home / "dump.corral", cli.home / "dump.corral.bak"
    dump.unlink(missing_ok=True)
    bak.unlink(missing_ok=True)
    cli.run("save")
    assert dump.exists()
    assert not bak.exists()
    cli.run("save")
    assert dump.exists()
    assert bak.exists()
