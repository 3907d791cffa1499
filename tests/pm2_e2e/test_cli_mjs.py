"""PM2 test/e2e/cli/mjs.sh: an ES module app in fork and cluster mode."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_mjs_fork(cli: Corral) -> None:
    """mjs.sh:8-12: index.mjs with --node-args: online in fork mode."""
    work = cli.workdir / "mjs"
    cli.run(
        "start", "--node-args=--experimental-modules", "index.mjs",
        "-o", "outech.log", "-e", "errech.log", cwd=work,
    )  # fmt: skip
    cli.should("status", "online", 1)
    cli.should("exec_mode", "fork_mode", 1)
    cli.delete_all()


def test_mjs_cluster(cli: Corral) -> None:
    """mjs.sh:16-18: index.mjs -i 2: 2 online in cluster mode."""
    cli.run("start", "--node-args=--experimental-modules", "-i", "2", "index.mjs",
            cwd=cli.workdir / "mjs")  # fmt: skip
    cli.should("status", "online", 2)
    cli.should("exec_mode", "cluster_mode", 2)
