"""The flags of `corral restart` and `corral reload` that change an app (PM2's):

- ``--node-args`` / ``--interpreter-args`` give the interpreter new arguments
  (``null`` removes them); a value a restart refuses is one line naming
  node_args, and the app keeps its pid and its arguments;
- ``restart --watch`` toggles watching per app: a watched app stops being
  watched, an unwatched one is watched.

Real daemons, real interpreters: the arguments are read from the process's
command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import corral
from tests.conftest import APPS, PY, wait_for
from tests.conftest import run_cli as corral_cli

SLEEPER = str(APPS / "sleeper.py")


@pytest.fixture
def pm(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[corral.Client]:
    """A detached daemon with the watch plugin, which the CLI subprocesses reach."""
    monkeypatch.setenv("CORRAL_PLUGINS", "watch")
    client = corral.connect()
    yield client
    client.kill_daemon()
    client.disconnect()


def _env(client: corral.Client, name: str) -> dict:
    return next(e for e in json.loads(client.jlist_json()) if e["name"] == name)["pm2_env"]


def _cmdline(client: corral.Client, name: str) -> list[str]:
    info = client.describe(name)[0]
    wait_for(lambda: info.pid and psutil.pid_exists(info.pid), timeout=5, what="a pid")
    return psutil.Process(info.pid).cmdline()


@pytest.mark.parametrize("verb", ["restart", "reload"])
def test_node_args_reach_the_interpreter_and_null_removes_them(pm, verb):
    pm.start(SLEEPER, {"name": "app", "interpreter": PY})
    corral_cli(verb, "app", "--node-args=-X dev")
    assert _env(pm, "app")["node_args"] == ["-X", "dev"]
    assert _cmdline(pm, "app")[1:3] == ["-X", "dev"]
    corral_cli(verb, "app", "--interpreter-args", "null")
    assert _env(pm, "app")["node_args"] == []
    assert "-X" not in _cmdline(pm, "app")


@pytest.mark.parametrize("verb", ["restart", "reload", "graceful-reload"])
def test_node_args_a_restart_refuses_change_nothing(pm, verb):
    first = pm.start(SLEEPER, {"name": "app", "node_args": "-u"})[0]
    done = corral_cli(verb, "app", '--node-args=-X "dev', check=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "node_args" in errors[0], done.stderr
    now = pm.describe("app")[0]
    assert (now.pid, now.restart_time) == (first.pid, 0)
    assert _env(pm, "app")["node_args"] == ["-u"]


def test_restart_watch_toggles_each_app_by_its_own_state(pm, tmp_path):
    pm.start(SLEEPER, {"name": "watched", "cwd": str(tmp_path), "watch": True})
    pm.start(SLEEPER, {"name": "plain", "cwd": str(tmp_path)})
    corral_cli("restart", "watched", "plain", "--watch")
    assert (_env(pm, "watched")["watch"], _env(pm, "plain")["watch"]) == (False, True)
    corral_cli("restart", "watched", "plain", "--watch")
    assert (_env(pm, "watched")["watch"], _env(pm, "plain")["watch"]) == (True, False)


def test_restart_watch_with_refused_node_args_keeps_watching(pm, tmp_path):
    first = pm.start(SLEEPER, {"name": "app", "cwd": str(tmp_path), "watch": True})[0]
    done = corral_cli("restart", "app", "--watch", "--node-args='", check=False)
    assert done.returncode == 1 and "node_args" in done.stderr
    assert _env(pm, "app")["watch"] is True
    assert pm.describe("app")[0].pid == first.pid


def test_restart_watch_with_only_is_refused_and_changes_nothing(pm):
    """`--watch` toggles apps one by one: `--only` (a config file's apps) is refused with
    it in one line, and no app is restarted."""
    first = pm.start(SLEEPER, {"name": "app"})[0]
    done = corral_cli("restart", "app", "--watch", "--only", "app", check=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--only" in errors[0], done.stderr
    now = pm.describe("app")[0]
    assert (now.pid, now.restart_time) == (first.pid, 0)
