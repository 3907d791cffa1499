"""PM2 test/e2e/cli/args.sh: arguments after `--` reach the script unchanged."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral, read, wait_text

ARGS = [
    "--logger.level=info",
    "--koa.hostname=0.0.0.0",
    "--ms.amqp.hostname=amqps://localhost",
    "--ms.amqp.port=5673",
    "--ms.amqp.heartbeat=30",
    "--ms.amqp.username=someuser",
    "--ms.amqp.password=12345",
    "--ms.amqp.vhost=default",
    "--mailer.config.host=localhost",
    "--mailer.config.auth=null",
]


def test_dotted_args(cli: Corral) -> None:
    """args.sh:13-47: ten --a.b=c arguments after `--`, each printed once."""
    work = cli.workdir / "args"
    cli.run(
        "start", "-f", "params_check.js", "--merge-logs", "-o", "args.log",
        "--name", "some-project", "--", *ARGS, cwd=work,
    )  # fmt: skip
    wait_text(work / "args.log", ARGS[-1])
    lines = read(work / "args.log").splitlines()
    for arg in ARGS:
        assert lines.count(arg) == 1, (arg, lines)
    cli.delete_all()


def test_two_scripts_share_args(cli: Corral) -> None:
    """args.sh:51-59: two scripts with the same args; argv1 printed twice (given twice)."""
    work = cli.workdir / "args"
    cli.run(
        "start", "-f", "params_check.js", "echo.js", "--merge-logs", "-o", "args.log",
        "--", "argv1", "argv1", "argv2", "argv3", cwd=work,
    )  # fmt: skip
    cli.should("status", "online", 2)
    wait_text(work / "args.log", "argv3")
    lines = read(work / "args.log").splitlines()
    assert (lines.count("argv1"), lines.count("argv2")) == (2, 1)
