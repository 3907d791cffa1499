"""reload_logs (PM2's reloadLogs) and SIGUSR2 are the logrotate plugin's: present with
it, absent without it (PluginError naming it; SIGUSR2 logged and ignored)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import corral
from corral.errors import PluginError
from corral.plugins import logrotate
from tests.conftest import out_lines, run_cli, wait_for


@pytest.fixture
def embedded(corral_home: Path) -> Iterator[corral.Client]:
    """An in-process daemon with no plugin."""
    with corral.connect(no_daemon=True, plugins=[]) as client:
        yield client


def moved_away(pm: corral.Client, app_path) -> Path:
    """A running app whose out log was just renamed (an external ``mv``)."""
    info = pm.start(app_path("sleeper.py"))[0]
    wait_for(lambda: out_lines(info), what="the app's first line")
    os.rename(info.out_log, info.out_log + ".1")
    return Path(info.out_log)


def daemon_log(home: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (home / "corral.log").read_text().splitlines()]
    except FileNotFoundError:
        return []


# -- with the plugin -----------------------------------------------------------


def test_reload_logs_reopens_a_moved_log(with_logrotate, pm, app_path, corral_home):
    path = moved_away(pm, app_path)
    os.rename(corral_home / "corral.log", corral_home / "corral.log.1")
    assert str(path) in pm.reload_logs()
    assert path.exists() and (corral_home / "corral.log").exists()
    assert pm.reloadLogs() == pm.reload_logs()  # PM2's name
    # the reopened corral.log is the one the daemon writes now
    assert any(r.get("event") == "reopened logs" for r in daemon_log(corral_home))


def test_sigusr2_reopens_logs(with_logrotate, pm, app_path):
    path = moved_away(pm, app_path)
    os.kill(pm.daemon_pid, signal.SIGUSR2)
    wait_for(lambda: path.exists(), what="the log reopened on SIGUSR2")
    pm.restart("sleeper")
    wait_for(lambda: out_lines(pm.describe(0)[0]), what="lines after a restart")


def test_cli_reload_logs(with_logrotate, pm, app_path):
    path = moved_away(pm, app_path)
    done = run_cli("reloadLogs")
    assert done.stdout == "reopened 2 log files\n"
    assert path.exists()


class SignalProbe:
    """What DaemonAPI.handle_signal answers a plugin at corral_daemon_start."""

    claimed: bool | None = None
    refused = ""

    @corral.hookimpl
    def corral_daemon_start(self, daemon) -> None:
        self.claimed = daemon.handle_signal(signal.SIGUSR2, lambda: None)
        try:
            daemon.handle_signal(signal.SIGTERM, lambda: None)
        except ValueError as exc:
            self.refused = str(exc)


def test_an_embedded_daemon_leaves_sigusr2_to_its_host(corral_home):
    before = signal.getsignal(signal.SIGUSR2)
    probe = SignalProbe()
    with corral.connect(no_daemon=True, plugins=[logrotate, probe]) as client:
        assert client.reload_logs() == []  # the command is served
        assert signal.getsignal(signal.SIGUSR2) is before  # the host's handler is untouched
        assert probe.claimed is False
        assert probe.refused == "SIGTERM is the daemon's own signal"


# -- without it ----------------------------------------------------------------


def test_without_the_plugin_reload_logs_names_it(pm, app_path):
    path = moved_away(pm, app_path)
    with pytest.raises(PluginError, match="reload_logs needs the plugin 'logrotate'"):
        pm.reload_logs()
    with pytest.raises(PluginError, match="'logrotate'"):
        pm.reloadLogs()

    async def scenario() -> None:
        client = await corral.AsyncClient.connect()
        try:
            with pytest.raises(PluginError, match="'logrotate'"):
                await client.reload_logs()
        finally:
            await client.disconnect()

    asyncio.run(scenario())
    assert not path.exists()  # nothing reopened


def test_without_the_plugin_an_embedded_daemon_names_it_too(embedded):
    with pytest.raises(PluginError, match="'logrotate'"):
        embedded.reload_logs()


def test_without_the_plugin_sigusr2_is_logged_and_ignored(pm, app_path, corral_home):
    path = moved_away(pm, app_path)
    pid = pm.daemon_pid
    os.kill(pid, signal.SIGUSR2)
    wait_for(
        lambda: any(
            r.get("event") == "signal ignored: no plugin handles it"
            for r in daemon_log(corral_home)
        ),
        what="the daemon to log the ignored SIGUSR2",
    )
    assert pm.ping()["pid"] == pid  # alive, the same daemon
    assert not path.exists()  # and nothing reopened
    assert pm.list()[0].status == "online"


def test_without_the_plugin_the_cli_says_which_plugin(pm):
    done = run_cli("reloadLogs", check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "reload_logs needs the plugin 'logrotate'" in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
