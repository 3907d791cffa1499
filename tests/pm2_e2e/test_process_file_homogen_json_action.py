"""PM2 test/e2e/process-file/homogen-json-action.sh: start/restart/reload of a JSON file
act on its apps, and start them when they do not run."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def _work(cli: Corral):  # type: ignore[no-untyped-def]
    return cli.workdir / "homogen-json-action"


def test_start(cli: Corral) -> None:
    """homogen-json-action.sh:12-14: all.json (http x4, http2 x2): 6 online, none restarted."""
    cli.kill()
    cli.run("start", "all.json", cwd=_work(cli))
    cli.should("status", "online", 6)
    cli.should("restart_time", 0, 6)


def test_start_again_restarts(cli: Corral) -> None:
    """homogen-json-action.sh:16-18: start all.json again: 6 online, each restarted once."""
    before = cli.restarts()
    cli.run("start", "all.json", cwd=_work(cli))
    cli.should("status", "online", 6)
    cli.restarted_once_more(before)


def test_restart_file(cli: Corral) -> None:
    """homogen-json-action.sh:20-21: restart all.json: each once more."""
    before = cli.restarts()
    cli.run("restart", "all.json", cwd=_work(cli))
    cli.restarted_once_more(before)


def test_reload_file(cli: Corral) -> None:
    """homogen-json-action.sh:23-24: reload all.json: each once more."""
    before = cli.restarts()
    cli.run("reload", "all.json", cwd=_work(cli))
    cli.restarted_once_more(before)


def test_restart_file_starts(cli: Corral) -> None:
    """homogen-json-action.sh:27-31: with nothing running, restart all.json starts it."""
    cli.delete_all()
    cli.run("restart", "all.json", cwd=_work(cli))
    cli.should("status", "online", 6)
    cli.should("restart_time", 0, 6)


def test_reload_file_starts(cli: Corral) -> None:
    """homogen-json-action.sh:34-38: with nothing running, reload all.json starts it."""
    cli.delete_all()
    cli.run("reload", "all.json", cwd=_work(cli))
    cli.should("status", "online", 6)
    cli.should("restart_time", 0, 6)
