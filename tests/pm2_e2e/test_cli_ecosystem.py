"""PM2 test/e2e/cli/ecosystem.e2e.sh: a JS config exporting one app whose script is missing."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_missing_script_in_js_config(cli: Corral) -> None:
    """ecosystem.e2e.sh:6-8: `module.exports = {script: 'unknown.js'}` (PM2's script checks
    nothing): corral refuses it in one line naming the script, starts nothing, no traceback."""
    proc = cli.run("start", "ecosystem.config.js", cwd=cli.workdir / "ecosystem", ok=False)
    assert "unknown.js" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert cli.jlist() == []
