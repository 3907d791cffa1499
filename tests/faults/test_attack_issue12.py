"""Issue 12 attacked as a stranger would: targets, identity, reconcile, the start
verdict and config files, through the real CLI on a temporary CORRAL_HOME.

- Clients that reconcile the same config file at once leave no process running
  that the daemon does not list (one reconcile at a time).
- A path target names the app started by that path before one behind a symlink.
- A JS config that leaves a timer running loads; one that calls process.exit says so.
- startOrReload / startOrRestart give the start verdict, as `corral start FILE` does.
- Ctrl-C during the verdict's wait says what was started (exit 130).
- A directory given as the script is called a directory; a missing config file of
  startOrReload is called missing; `start S --name X` while X runs another script
  names both scripts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from corral.errors import NotFoundError
from tests.conftest import APPS, kill_pids, wait_for

SLEEPER = APPS / "sleeper.py"


def corral(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """The CLI in its own session: on a timeout, it and its children (node) are killed."""
    command = [sys.executable, "-m", "corral", *args]
    env = {**os.environ, "COLUMNS": "200"}
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        text=True,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def write(path: Path, apps: list[dict]) -> Path:
    path.write_text(json.dumps({"apps": apps}))
    return path


def running(script: Path) -> set[int]:
    """Pids of every live process running ``script`` (zombies excluded)."""
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if str(script) in cmdline and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.add(proc.info["pid"])
    return found


# -- reconcile: two clients at once ------------------------------------------------


def test_clients_reconciling_one_file_at_once_leak_no_process(pm, tmp_path):
    """Four `corral start eco.json` at once, after the file changed an app's script:
    every process running the new script is one the daemon lists."""
    old, new = tmp_path / "old.py", tmp_path / "new.py"
    shutil.copy(SLEEPER, old)
    shutil.copy(SLEEPER, new)
    eco = write(tmp_path / "eco.json", [{"name": "a1", "script": "old.py", "instances": 3}])
    assert corral("start", str(eco), "--no-wait", cwd=tmp_path).returncode == 0
    try:
        rounds(pm, tmp_path, eco, old, new)
    finally:  # a leaked process is no app the fixture knows: by pid
        kill_pids(sorted(running(old) | running(new)))


def rounds(pm, tmp_path: Path, eco: Path, old: Path, new: Path) -> None:
    for round_, (gone, now) in enumerate([(old, new), (new, old), (old, new)]):
        write(eco, [{"name": "a1", "script": now.name, "instances": 3}])
        clients = [
            subprocess.Popen(
                [sys.executable, "-m", "corral", "start", str(eco), "--no-wait"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [c.communicate(timeout=60)[0] for c in clients]
        assert all(c.returncode == 0 for c in clients), outputs
        listed = {i.pid for i in pm.list() if i.name == "a1"}
        assert len(listed) == 3, (round_, outputs)
        assert running(now) == listed, (round_, outputs)
        assert not running(gone), (round_, outputs)
        # each client planned on what the one before it left: one replace, then unchanged
        replaced = [o for o in outputs if "a1: replaced" in o]
        assert len(replaced) == 1, (round_, outputs)


# -- targets: a symlink --------------------------------------------------------------


def test_a_symlink_target_names_the_app_of_that_path_not_the_one_behind_it(pm, tmp_path):
    """`stop link.py` where link.py -> app.py and both run as apps: only the app
    started as link.py stops (PM2 compares path.resolve(), which keeps links); the
    link still reaches app.py's app when no app was started by the link's path."""
    shutil.copy(SLEEPER, tmp_path / "app.py")
    (tmp_path / "link.py").symlink_to("app.py")
    (tmp_path / "alias.py").symlink_to("app.py")
    assert corral("start", "app.py", "--no-wait", cwd=tmp_path).returncode == 0
    assert corral("start", "link.py", "--no-wait", cwd=tmp_path).returncode == 0
    result = corral("stop", "link.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    status = {i.name: i.status for i in pm.list()}
    assert status == {"app": "online", "link": "stopped"}
    result = corral("stop", "alias.py", cwd=tmp_path)  # no app by that path: the file behind it
    assert result.returncode == 0, result.stderr
    assert {i.name: i.status for i in pm.list()} == {"app": "stopped", "link": "stopped"}


# -- JS configs: a timer left running, a process.exit ------------------------------


def test_a_js_config_that_leaves_a_timer_running_loads(pm, tmp_path):
    """PM2 require()s the file in its own process, so a config that opens a handle
    (a timer, a client a required module connects) loads; corral ran node until it
    exited and refused the file after 30 s."""
    shutil.copy(SLEEPER, tmp_path / "app.py")
    eco = tmp_path / "ecosystem.config.js"
    eco.write_text(
        "setInterval(() => {}, 1000);\n"
        "module.exports = { apps: [{ name: 'timer', script: 'app.py' }] };\n"
    )
    result = corral("start", str(eco), "--dry-run", cwd=tmp_path, timeout=20)
    assert result.returncode == 0, result.stderr
    assert "timer: started (1 instance)" in result.stdout


def test_a_js_config_that_calls_process_exit_says_so(pm, tmp_path):
    eco = tmp_path / "ecosystem.config.js"
    eco.write_text("module.exports = { apps: [] };\nprocess.exit(3);\n")
    result = corral("start", str(eco), cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ecosystem.config.js" in lines[0]
    assert "exited with code 3" in lines[0], lines[0]
    assert not pm.list()


# -- startOrReload of a change that makes the app crash ----------------------------

ENV_CRASH = """\
import os, sys, time
if os.environ.get("BAD"):
    print("config error: BAD is set", file=sys.stderr, flush=True)
    sys.exit(2)
print("up", flush=True)
while True:
    time.sleep(3600)
"""


@pytest.mark.parametrize("verb", ["startOrReload", "startOrRestart"])
def test_start_or_reload_of_a_change_that_crashes_the_app_says_so(pm, tmp_path, verb):
    """`corral start FILE` gives the start verdict; startOrReload / startOrRestart are
    starts of the same file and printed `sr: reloaded (changed: env)`, exit 0, while
    every instance crash-looped."""
    (tmp_path / "envcrash.py").write_text(ENV_CRASH)
    app = {"name": "sr", "script": "envcrash.py", "instances": 2}
    eco = write(tmp_path / "eco.json", [app])
    assert corral("start", str(eco), cwd=tmp_path).returncode == 0
    write(eco, [{**app, "env": {"BAD": "1"}}])
    result = corral(verb, str(eco), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: no instance of sr stayed up" in result.stderr
    assert "config error: BAD is set" in result.stderr
    result = corral(verb, str(eco), "--no-wait", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


# -- ctrl-C during the start verdict's wait ----------------------------------------


@pytest.mark.parametrize("verb", ["start", "startOrRestart"])
def test_ctrl_c_during_the_wait_says_the_app_was_started(pm, tmp_path, verb):
    """The CLI started the app, then waits min_uptime; ctrl-C there left exit 130 and
    not a word, so the user could not tell whether anything was started."""
    shutil.copy(SLEEPER, tmp_path / "app.py")
    app = {"name": "app", "script": "app.py", "min_uptime": 30000}
    args = ["app.py", "--min-uptime", "30000"]
    if verb != "start":
        args = [str(write(tmp_path / "eco.json", [app]))]
    cli = subprocess.Popen(
        [sys.executable, "-m", "corral", verb, *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # up 1 s: the CLI has had the start's answer long since, and is in its wait
        wait_for(
            lambda: [
                i
                for i in pm.list()
                if i.status == "online" and time.time() * 1000 - i.pm_uptime > 1000
            ],
            what="app up 1 s",
        )
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=20)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert cli.returncode == 130, err
    assert "app" in err and "started" in err, err
    assert "Traceback" not in err
    (info,) = pm.list()
    assert info.status == "online" and pm.ping()


# -- a directory given as the script -------------------------------------------------


@pytest.mark.parametrize("given", ["sub", "./sub/"])
def test_a_directory_given_as_the_script_is_named_a_directory(pm, tmp_path, given):
    """`corral start sub` said "script 'sub' not found: no such file in ..." of a
    directory that is right there."""
    (tmp_path / "sub").mkdir()
    result = corral("start", given, cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "is a directory" in line and "not found" not in line, line
    assert "script" in line
    assert not pm.list()


# -- startOrReload of a config file that is not there --------------------------------


@pytest.mark.parametrize("verb", ["startOrReload", "startOrRestart"])
def test_a_missing_config_file_is_said_to_be_missing(pm, tmp_path, verb):
    """It said "reload of 'ecosystem.config.js' needs a config file
    (ecosystem.config.js, ...)" of the file it could not find."""
    result = corral(verb, "ecosystem.config.js", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "not found" in line and str(tmp_path) in line, line
    assert "needs a config file" not in line


# -- start --name X of a script while X runs another script ------------------------


def test_start_with_a_name_that_runs_another_script_names_both(pm, tmp_path):
    """`start sub/app.py --name app` while 'app' runs app.py said "'app' is already
    running: restart it, or --force for another copy": a restart runs the other script,
    and --force makes two apps 'app' of different scripts. It names both scripts and
    the fix (another --name), and changes nothing."""
    shutil.copy(SLEEPER, tmp_path / "app.py")
    (tmp_path / "sub").mkdir()
    shutil.copy(SLEEPER, tmp_path / "sub" / "app.py")
    assert corral("start", "app.py", "--no-wait", cwd=tmp_path).returncode == 0
    (before,) = pm.list()
    result = corral("start", "sub/app.py", "--name", "app", "--no-wait", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert str(tmp_path / "app.py") in line and str(tmp_path / "sub" / "app.py") in line, line
    assert "--name" in line and "--force" not in line, line
    (after,) = pm.list()
    assert (after.pid, after.pm2_env["pm_exec_path"]) == (before.pid, str(tmp_path / "app.py"))


def test_start_with_a_name_stopped_with_another_script_names_both(pm, tmp_path):
    """The same while 'app' is stopped: the start replaced the stopped app's script with
    the new one (PM2 would restart the old one); both are a surprise. It names both
    scripts and changes nothing."""
    shutil.copy(SLEEPER, tmp_path / "app.py")
    (tmp_path / "sub").mkdir()
    shutil.copy(SLEEPER, tmp_path / "sub" / "app.py")
    assert corral("start", "app.py", "--no-wait", cwd=tmp_path).returncode == 0
    pm.stop("app")
    result = corral("start", "sub/app.py", "--name", "app", "--no-wait", cwd=tmp_path)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "is stopped with" in line and str(tmp_path / "sub" / "app.py") in line, line
    (after,) = pm.list()
    assert (after.status, after.pm2_env["pm_exec_path"]) == ("stopped", str(tmp_path / "app.py"))


# -- reconcile vs a delete of one of its new apps ------------------------------------

DEAF = """\
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("up", flush=True)
while True:
    time.sleep(3600)
"""


def test_a_new_app_deleted_while_its_file_replaces_another_is_not_launched(pm, tmp_path):
    """A reconcile makes the file's new apps, waits for a replaced app to stop (here
    its kill_timeout, 4 s), then launches them: a `corral delete` of a new app in that
    window left its instances running, listed nowhere."""
    (tmp_path / "deaf.py").write_text(DEAF)
    (tmp_path / "deaf2.py").write_text(DEAF)
    shutil.copy(SLEEPER, tmp_path / "fresh.py")
    old = {"name": "old", "script": "deaf.py", "kill_timeout": 4000}
    eco = write(tmp_path / "eco.json", [old])
    assert corral("start", str(eco), "--no-wait", cwd=tmp_path).returncode == 0
    fresh = {"name": "fresh", "script": "fresh.py", "instances": 2}
    write(eco, [{**old, "script": "deaf2.py"}, fresh])
    cli = subprocess.Popen(
        [sys.executable, "-m", "corral", "start", str(eco), "--no-wait"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def delete_fresh() -> bool:
            try:
                return bool(pm.delete("fresh"))
            except NotFoundError:
                return False

        wait_for(delete_fresh, what="fresh made, then deleted")
        cli.communicate(timeout=30)
        assert not [i for i in pm.list() if i.name == "fresh"]
        assert not running(tmp_path / "fresh.py")
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
        kill_pids(sorted(running(tmp_path / "fresh.py")))


# -- a config file too big for one request -------------------------------------------


def test_a_config_too_big_for_one_request_is_refused_not_hung(pm, tmp_path):
    """A 17 MB config (one huge env value) made a start request over the daemon's 16 MB
    frame limit: zmq dropped it unread and the CLI waited for an answer forever."""
    shutil.copy(SLEEPER, tmp_path / "app.py")
    app = {"name": "big", "script": "app.py", "env": {"BLOB": "v" * (17 * 1024 * 1024)}}
    eco = write(tmp_path / "eco.json", [app])
    result = corral("start", str(eco), "--dry-run", cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "limit" in line, line
    assert not pm.list() and pm.ping()
