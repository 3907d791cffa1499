"""PM2 test/e2e/cli/extra-lang.sh: Python (and PHP) apps from JSON and from the CLI."""

from __future__ import annotations

import shutil

import pytest

from tests.pm2_e2e.conftest import Corral, wait_text


@pytest.mark.skipif(not shutil.which("php"), reason="no php on this machine")
def test_python_and_php_from_json(cli: Corral) -> None:
    """extra-lang.sh:16-32: apps.json (PM2's lenient JSON: unquoted keys) starts a Python
    and a PHP app, each writing its logs."""
    work = cli.workdir / "extra-lang"
    cli.run("start", "apps.json", cwd=work)
    cli.should("status", "online", 2)
    wait_text(work / "python-app.log", "Python")


@pytest.mark.skipif(
    not shutil.which("php"),
    reason="apps.json also holds a PHP app and PHP is not on this machine, so the file is "
    "refused as a whole; test_python_from_json runs the Python app alone, and "
    "tests/core/test_config_pm2.py the lenient JSON",
)
def test_python_from_lenient_json(cli: Corral) -> None:
    """extra-lang.sh:16-26 without PHP: the same apps.json (unquoted keys), PHP app
    dropped from the check: the Python app writes 'Python' to its log."""
    work = cli.workdir / "extra-lang"
    cli.run("start", "apps.json", cwd=work)
    wait_text(work / "python-app.log", "Python")
    cli.delete_all()


def test_python_from_json(cli: Corral) -> None:
    """extra-lang.sh:16-26, Python app only, strict JSON (apps-python.json): log, combine_logs
    and env reach the app."""
    work = cli.workdir / "extra-lang"
    cli.run("start", "apps-python.json", cwd=work)
    cli.should("status", "online", 1)
    wait_text(work / "python-app.log", "Python")


def test_restart_json_with_env_production(cli: Corral) -> None:
    """extra-lang.sh:35-45: restart apps.json --env production: env_production applies."""
    work = cli.workdir / "extra-lang"
    cli.run("restart", "apps-python.json", "--env", "production", cwd=work)
    (work / "python-app.log").write_text("")
    wait_text(work / "python-app.log", "PythonProduction")


def test_python_from_cli(cli: Corral) -> None:
    """extra-lang.sh:50-58: echo.py --interpreter python3 --interpreter-args -u --log:
    online, prints RAWPython."""
    cli.delete_all()
    work = cli.workdir / "extra-lang"
    python = shutil.which("python3")
    assert python
    cli.run(
        "start", "echo.py", f"--interpreter={python}", "--interpreter-args=-u",
        "--log=cli-python.log", "--merge-logs", cwd=work,
    )  # fmt: skip
    cli.should("status", "online", 1)
    wait_text(work / "cli-python.log", "RAWPython")
