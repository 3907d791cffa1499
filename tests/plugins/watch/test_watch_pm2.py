"""watch as PM2 shows and arms it, on a detached daemon with the watch plugin.

- ``stop`` turns ``pm2_env.watch`` false (PM2's client stops the watcher and says
  so); a start or restart of the stopped app watches again, as its ``watch``
  option asks; ``restart`` with ``watch`` turns watching on;
- watching is armed before ``start()`` returns: a file written right after the
  reply restarts the app.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import corral
from tests.conftest import APPS, wait_for

SLEEPER = str(APPS / "sleeper.py")


@pytest.fixture
def pm(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[corral.Client]:
    """A detached daemon that loads the watch plugin."""
    monkeypatch.setenv("CORRAL_PLUGINS", "watch")
    client = corral.connect()
    yield client
    client.kill_daemon()
    client.disconnect()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with a few hundred directories: the observer takes a while to arm."""
    root = tmp_path / "project"
    for i in range(300):
        (root / "pkg" / f"mod{i}").mkdir(parents=True)
    (root / "app.py").write_text("# the app\n")
    return root


def shown_watch(client: corral.Client, name: str) -> object:
    """``pm2_env.watch`` of the app as ``jlist`` prints it."""
    entry = next(e for e in json.loads(client.jlist_json()) if e["name"] == name)
    return entry["pm2_env"]["watch"]


def watched_ids(client: corral.Client, name: str) -> list[int]:
    rows = [row for row in client.call("watch_status") if row["name"] == name]
    return rows[0]["pm_ids"] if rows and rows[0]["watching"] else []


def test_a_file_written_right_after_start_returns_restarts_the_app(pm, project):
    first = pm.start(SLEEPER, {"name": "web", "cwd": str(project), "watch": True})[0]
    (project / "app.py").write_text("# changed at once\n")
    again = wait_for(
        lambda: next((i for i in pm.describe("web") if i.restart_time == 1), None),
        timeout=5,
        what="the restart the change asks for",
    )
    assert again.pid != first.pid


def test_a_restart_rearms_before_it_returns(pm, project):
    pm.start(SLEEPER, {"name": "web", "cwd": str(project)})
    assert watched_ids(pm, "web") == []
    pm.restart("web", options={"watch": True})  # PM2's `restart --watch`
    assert shown_watch(pm, "web") is True
    (project / "app.py").write_text("# changed at once\n")
    wait_for(lambda: pm.describe("web")[0].restart_time == 2, timeout=5, what="watch restart")


def test_stop_turns_watch_off_and_a_start_turns_it_back_on(pm, project):
    pm.start(SLEEPER, {"name": "web", "cwd": str(project), "watch": True, "instances": 2})
    assert shown_watch(pm, "web") is True and watched_ids(pm, "web") == [0, 1]
    pm.stop(0)
    assert shown_watch(pm, "web") is False  # the first instance, stopped: not watched
    assert [i.pm2_env["watch"] for i in pm.describe("web")] == [False, True]
    assert watched_ids(pm, "web") == [1]
    pm.stop("web")
    assert [i.pm2_env["watch"] for i in pm.describe("web")] == [False, False]
    assert watched_ids(pm, "web") == []
    pm.restart("web")
    assert [i.pm2_env["watch"] for i in pm.describe("web")] == [True, True]
    assert watched_ids(pm, "web") == [0, 1]
    pm.stop("web")
    pm.start("web")  # `start NAME` of the stopped app
    assert [i.pm2_env["watch"] for i in pm.describe("web")] == [True, True]
    assert watched_ids(pm, "web") == [0, 1]
    # the option is kept: a dump of the stopped app still asks for watching
    pm.stop("web")
    pm.dump()
    saved = json.loads((Path(pm.home) / "dump.corral").read_text())["apps"]
    assert [app["options"]["watch"] for app in saved] == [True, True]


def test_watch_stop_shows_false_and_watch_start_true(pm, project):
    pm.start(SLEEPER, {"name": "plain", "cwd": str(project)})
    assert shown_watch(pm, "plain") is False
    pm.call("watch_toggle", name="plain", on=True)  # `corral watch start plain`
    assert shown_watch(pm, "plain") is True
    pm.call("watch_toggle", name="plain", on=False)
    assert shown_watch(pm, "plain") is False


def test_the_cli_restart_watch_turns_watching_on(pm, project):
    pm.start(SLEEPER, {"name": "plain", "cwd": str(project)})
    pm.stop("plain")
    done = subprocess.run(
        [sys.executable, "-m", "corral", "restart", "plain", "--watch"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),  # CORRAL_HOME and CORRAL_PLUGINS of this test
    )
    assert done.returncode == 0, done.stderr
    assert shown_watch(pm, "plain") is True and watched_ids(pm, "plain") == [0]
    (project / "app.py").write_text("# changed at once\n")
    wait_for(lambda: pm.describe("plain")[0].restart_time == 1, timeout=5, what="watch restart")
