"""The startup plugin is removable: without it there is no `corral startup`, no
``Client.startup()`` and no file written; with it both work. And the generators'
hook is ``firstresult``: the first answer wins, the others are not even called."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import corral
from corral.cli.commands import build_cli
from corral.errors import PluginError
from corral.hooks import load_plugins
from corral.plugins.startup import StartupScript
from tests.plugins.startup.conftest import Recorder


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def invoke(*args: str):
    return CliRunner().invoke(build_cli(), list(args))


def test_without_the_startup_plugin_the_cli_commands_name_it(monkeypatch, tmp_path):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    for verb in ("startup", "unstartup"):
        refused = invoke(verb, "systemd", "-u", "alice", "--hp", str(tmp_path), "--print")
        assert refused.exit_code == 1, refused.output
        assert refused.stderr.startswith(f"error: `corral {verb}` needs the plugin 'startup'")
        assert refused.stdout == ""
    assert "startup" not in invoke("--help").stdout
    # a generator alone renders nothing: the plugin that installs is still missing
    monkeypatch.setenv("CORRAL_PLUGINS", "startup_systemd")
    assert "needs the plugin 'startup'" in invoke("startup", "systemd", "--print").stderr
    monkeypatch.setenv("CORRAL_PLUGINS", "startup,startup_systemd")
    done = invoke("startup", "systemd", "-u", "alice", "--hp", str(tmp_path), "--print")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("# Written by `corral startup systemd`")


def test_without_the_startup_plugin_the_client_raises_and_writes_nothing(
    corral_home, monkeypatch, tmp_path
):
    monkeypatch.delenv("CORRAL_PLUGINS", raising=False)  # every plugin is installed
    root, runner = tmp_path / "root", Recorder()
    kwargs = {"root": root, "run": runner, "is_root": True}
    with corral.connect(no_daemon=True, plugins=[]) as client:
        with pytest.raises(PluginError, match="the plugin 'startup', which is not loaded"):
            client.startup("systemd", **kwargs)
        with pytest.raises(PluginError, match="the plugin 'startup'"):
            client.unstartup("systemd", **kwargs)
    assert not root.exists() and runner.commands == []
    with corral.connect(no_daemon=True, plugins=["startup", "startup_systemd"]) as client:
        result = client.startup("systemd", **kwargs)
    assert files_under(root) == [result.written]
    assert result.written.name == f"corral-{result.context.user}.service"
    assert ["systemctl", "daemon-reload"] in runner.commands


class Answers:
    """A generator that answers first (tryfirst) for systemd."""

    @corral.hookimpl(tryfirst=True)
    def corral_startup_script(self, init_system, context):
        return StartupScript("systemd", Path("/etc/systemd/system/first.service"), "[Unit]\n")


class Counts:
    """A generator pluggy would call last; it must not be called once one has answered."""

    def __init__(self) -> None:
        self.calls = 0

    @corral.hookimpl(trylast=True)
    def corral_startup_script(self, init_system, context):
        self.calls += 1


def test_the_first_answer_wins_and_the_rest_are_not_called(corral_home, tmp_path):
    counts = Counts()
    manager = load_plugins(["startup", "startup_systemd", Answers(), counts])
    with corral.connect(no_daemon=True, plugins=[]) as client:
        result = client.startup("systemd", hp=tmp_path, manager=manager, print_only=True)
    assert result.script.path.name == "first.service"
    assert counts.calls == 0
