"""PM2 test/e2e/process-file/yaml-configuration.sh: YAML files, by file and by `all`."""

from __future__ import annotations

from tests.pm2_e2e.conftest import Corral


def _work(cli: Corral):  # type: ignore[no-untyped-def]
    return cli.workdir / "yaml-configuration"


def test_missing_file(cli: Corral) -> None:
    """yaml-configuration.sh:7-8: a YAML file that does not exist starts nothing."""
    proc = cli.run("start", "non-existent.yaml", cwd=_work(cli), ok=False)
    assert "non-existent.yaml" in proc.stderr
    assert cli.jlist() == []


def test_file_with_no_app(cli: Corral) -> None:
    """yaml-configuration.sh:10-11: a YAML file holding no app starts nothing."""
    proc = cli.run("start", "malformated.yml", cwd=_work(cli), ok=False)
    assert "no apps found" in proc.stderr
    assert cli.jlist() == []


def test_start_yaml(cli: Corral) -> None:
    """yaml-configuration.sh:13-14: apps.yaml (a node app, a node app x4, a Python app
    with interpreter, interpreter_args and env): 6 online."""
    cli.run("start", "apps.yaml", cwd=_work(cli))
    cli.should("status", "online", 6)


def test_restart_all(cli: Corral) -> None:
    """yaml-configuration.sh:16-17: restart all: each restarted once."""
    before = cli.restarts()
    cli.run("restart", "all")
    cli.restarted_once_more(before)


def test_restart_yaml(cli: Corral) -> None:
    """yaml-configuration.sh:19-20: restart apps.yaml: each restarted once more."""
    before = cli.restarts()
    cli.run("restart", "apps.yaml", cwd=_work(cli))
    cli.restarted_once_more(before)


def test_reload_all(cli: Corral) -> None:
    """yaml-configuration.sh:22-23: reload all: each once more."""
    before = cli.restarts()
    cli.run("reload", "all")
    cli.restarted_once_more(before)


def test_reload_yaml(cli: Corral) -> None:
    """yaml-configuration.sh:25-26: reload apps.yaml: each once more."""
    before = cli.restarts()
    cli.run("reload", "apps.yaml", cwd=_work(cli))
    cli.restarted_once_more(before)


def test_stop_all_start_delete_all(cli: Corral) -> None:
    """yaml-configuration.sh:28-33: stop all: 6 stopped; start apps.yaml, delete all: none."""
    cli.run("stop", "all")
    cli.should("status", "stopped", 6)
    cli.run("start", "apps.yaml", cwd=_work(cli))
    cli.run("delete", "all")
    cli.wait(lambda procs: procs == [], "none left")
