"""PM2 test/e2e/cli/python-support.sh: Python apps are fork mode, with instances too."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def test_config_only_one_app(cli: Corral) -> None:
    """python-support.sh:12-14: app-python.config.js --only echo-python-1: one fork app."""
    work = cli.workdir / "extra-lang"
    cli.run("start", "app-python.config.js", "--only", "echo-python-1", cwd=work)
    cli.should("exec_mode", "fork_mode", 1)
    cli.should("status", "online", 1)
    cli.delete_all()


def test_config_only_four_instances(cli: Corral) -> None:
    """python-support.sh:19-26: --only echo-python-max: 4 fork instances, kept on restart."""
    work = cli.workdir / "extra-lang"
    cli.run("start", "app-python.config.js", "--only", "echo-python-max", cwd=work)
    cli.should("exec_mode", "fork_mode", 4)
    cli.should("status", "online", 4)
    cli.run("restart", "all")
    cli.should("restart_time", 1, 4)
    cli.should("exec_mode", "fork_mode", 4)


def test_config_both_apps(cli: Corral) -> None:
    """python-support.sh:12-26 without --only: the whole file, 1 + 4 fork instances, kept
    in fork mode on restart all."""
    cli.delete_all()
    work = cli.workdir / "extra-lang"
    cli.run("start", "app-python.config.js", cwd=work)
    cli.should("exec_mode", "fork_mode", 5)
    cli.should("status", "online", 5)
    cli.run("restart", "all")
    cli.should("restart_time", 1, 5)
    cli.should("exec_mode", "fork_mode", 5)
    cli.delete_all()


def test_cli_one(cli: Corral) -> None:
    """python-support.sh:34-36: start echo.py: fork, online."""
    cli.run("start", "echo.py", cwd=cli.workdir / "extra-lang")
    cli.should("exec_mode", "fork_mode", 1)
    cli.should("status", "online", 1)
    cli.delete_all()


def test_cli_four(cli: Corral) -> None:
    """python-support.sh:40-46: echo.py -i 4: 4 fork instances, kept on restart all."""
    cli.run("start", "echo.py", "-i", "4", cwd=cli.workdir / "extra-lang")
    cli.should("exec_mode", "fork_mode", 4)
    cli.should("status", "online", 4)
    cli.run("restart", "all")
    cli.should("restart_time", 1, 4)
    cli.should("exec_mode", "fork_mode", 4)
