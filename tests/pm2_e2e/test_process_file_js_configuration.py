"""PM2 test/e2e/process-file/js-configuration.sh: a JS ecosystem file with a deploy section."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_js_ecosystem(cli: Corral) -> None:
    """js-configuration.sh:7-8: ecosystem.config.js (comments, env, env_production, deploy):
    its one app online, with its env."""
    cli.run("start", "ecosystem.config.js", cwd=cli.workdir / "js-configuration")
    cli.should("status", "online", 1)
    cli.should("COMMON_VARIABLE", "true", 1)
