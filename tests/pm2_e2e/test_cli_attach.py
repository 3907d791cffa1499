"""PM2 test/e2e/cli/attach.sh: `pm2 send` writes a line to an app's stdin."""

from __future__ import annotations

from corral.testing import wait_for
from tests.pm2_e2e.conftest import Corral, timeout


def test_send_line_to_stdin(cli: Corral) -> None:
    """attach.sh:8-17: stdin.js with -o out-rel.log --merge-logs; `send 0 LINE` reaches it."""
    work = cli.workdir / "stdin"
    cli.run("start", "stdin.js", "-o", "out-rel.log", "--merge-logs", cwd=work)
    cli.should("status", "online", 1)
    cli.run("send", "0", "LINE", cwd=work)
    log = work / "out-rel.log"
    wait_for(lambda: log.exists() and "Line LINE received" in log.read_text(), timeout())
    cli.delete_all()
