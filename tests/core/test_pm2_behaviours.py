"""PM2's small behaviours, on real daemons and processes (issue 12, point 7).

- a restart (or start) of a stopped app is no restart: ``restart_time`` stays;
- ``prev_restart_delay`` goes back to 0 after the app has been up long enough, in
  place, while it keeps running (PM2's worker, EXP_BACKOFF_RESET_TIMER);
- a broken dump file is moved aside, never over the good ``.bak``, and resurrect
  says it used the ``.bak``;
- an app logging to ``/dev/null`` (or ``NULL``) shows that path, as PM2 does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import corral
from tests.conftest import APPS, python_app, wait_for

SLEEPER = str(APPS / "sleeper.py")


def pm2_env(client: corral.Client, name: str) -> dict:
    """The app's ``pm2_env`` as ``jlist`` prints it."""
    return next(e["pm2_env"] for e in json.loads(client.jlist_json()) if e["name"] == name)


# -- restart_time ----------------------------------------------------------------


def test_restarting_a_stopped_app_is_not_a_restart(pm):
    pm.start(SLEEPER, {"name": "calm"})
    pm.stop("calm")
    again = pm.restart("calm")[0]
    assert again.status == "online" and again.restart_time == 0  # PM2 keeps 0
    assert pm2_env(pm, "calm")["restart_time"] == 0
    pm.stop("calm")
    assert pm.start("calm")[0].restart_time == 0  # `start NAME` of a stopped app: the same
    # a restart of an online app counts, as PM2's restartProcessId does
    assert pm.restart("calm")[0].restart_time == 1
    pm.stop("calm")
    assert pm.restart("calm")[0].restart_time == 1


def test_starting_a_stopped_script_again_is_not_a_restart(pm):
    pm.start(SLEEPER, {"name": "script"})
    pm.stop("script")
    assert pm.start(SLEEPER, {"name": "script"})[0].restart_time == 0


# -- prev_restart_delay ----------------------------------------------------------

# Crashes on its first two runs (counted in a file beside it), then stays up.
CRASH_TWICE = """\
import pathlib, sys, time
runs = pathlib.Path(sys.argv[1])
count = int(runs.read_text() or 0) if runs.exists() else 0
runs.write_text(str(count + 1))
if count < 2:
    sys.exit(3)
print("up", flush=True)
while True:
    time.sleep(3600)
"""


@pytest.fixture
def quick_reset(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[corral.Client]:
    """A detached daemon that forgets the backoff after 1.5 s up instead of 30 s."""
    monkeypatch.setenv("CORRAL_EXP_BACKOFF_RESET_MS", "1500")
    client = corral.connect()
    yield client
    client.kill_daemon()
    client.disconnect()


def test_the_backoff_resets_after_the_app_stays_up(quick_reset, tmp_path):
    pm = quick_reset
    script = python_app(tmp_path, "twice.py", CRASH_TWICE)
    options = {"name": "twice", "exp_backoff_restart_delay": 100, "args": [str(tmp_path / "n")]}
    pm.start(script, options)
    info = wait_for(
        lambda: next((i for i in pm.describe("twice") if i.restart_time == 2), None),
        what="two crash restarts",
    )
    pid = info.pid
    assert info.pm2_env["prev_restart_delay"] == 150  # 100, then 100 * 1.5
    # visible in jlist while the same run keeps going, not only at its next exit
    wait_for(lambda: pm2_env(pm, "twice")["prev_restart_delay"] == 0, timeout=6, what="reset")
    after = pm.describe("twice")[0]
    assert (after.pid, after.status, after.restart_time) == (pid, "online", 2)


# -- dump and .bak ---------------------------------------------------------------


def _saved_names(path: Path) -> list[str]:
    return [app["name"] for app in json.loads(path.read_text())["apps"]]


def _broken_files(home: Path) -> list[Path]:
    return sorted(home.glob("dump.corral.broken-*"))


def test_a_broken_dump_is_moved_aside_not_over_the_backup(pm, corral_home):
    dump, backup = corral_home / "dump.corral", corral_home / "dump.corral.bak"
    pm.start(SLEEPER, {"name": "first"})
    pm.dump()
    pm.dump()
    assert _saved_names(backup) == ["first"]
    dump.write_text('{"version": 1, "apps": [{"na')  # torn mid-write
    pm.start(SLEEPER, {"name": "second"})
    pm.dump()
    assert _saved_names(backup) == ["first"]  # the good backup survives
    assert _saved_names(dump) == ["first", "second"]
    (aside,) = _broken_files(corral_home)
    assert aside.read_text() == '{"version": 1, "apps": [{"na'


def test_resurrect_from_the_backup_says_so(pm, corral_home):
    dump = corral_home / "dump.corral"
    pm.start(SLEEPER, {"name": "kept"})
    pm.dump()
    pm.dump()
    dump.write_bytes(b"\x00garbage\xff")
    pm.delete("all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        back = pm.resurrect()
    assert [b.name for b in back] == ["kept"] and back[0].status == "online"
    said = [str(w.message) for w in caught if issubclass(w.category, corral.CorralWarning)]
    assert len(said) == 1 and "dump.corral.bak" in said[0], said
    (aside,) = _broken_files(corral_home)
    assert str(aside) in said[0]
    assert aside.read_bytes() == b"\x00garbage\xff" and not dump.exists()
    # the next dump writes a good file and keeps the good backup
    pm.dump()
    assert _saved_names(dump) == ["kept"]
    assert _saved_names(corral_home / "dump.corral.bak") == ["kept"]


def test_the_cli_resurrect_says_it_used_the_backup(pm, corral_home):
    pm.start(SLEEPER, {"name": "cli"})
    pm.dump()
    pm.dump()
    (corral_home / "dump.corral").write_text("not json at all")
    pm.delete("all")
    done = subprocess.run(
        [sys.executable, "-m", "corral", "resurrect"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CORRAL_HOME": str(corral_home)},
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "dump.corral.bak" in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("warning: ") and "broken" in lines[0]
    assert "Warning" not in done.stderr  # one plain line, not Python's warning format
    assert pm.describe("cli")[0].status == "online"


# -- /dev/null -------------------------------------------------------------------


def test_dev_null_log_paths_read_dev_null(pm):
    pm.start(
        SLEEPER,
        {"name": "quiet", "out_file": "/dev/null", "error_file": "NULL", "log_file": "NULL"},
    )
    env = pm2_env(pm, "quiet")
    assert (env["pm_out_log_path"], env["pm_err_log_path"]) == ("/dev/null", "/dev/null")
    assert env["pm_log_path"] == "/dev/null"
    info = pm.describe("quiet")[0]
    assert (info.out_log, info.err_log) == ("/dev/null", "/dev/null")
    assert info.status == "online"
    pm.restart("quiet")  # nothing tries to open or rotate /dev/null as a file
    assert pm.describe("quiet")[0].status == "online"
