"""The generated files are valid, and the shell scripts really start and stop corral.

Validation uses the tools this machine has: ``systemd-analyze verify`` for the
units, ``sh -n`` for the scripts, plistlib for the launchd plist. Then each shell
script is run for real (as root, for the current user, on a private
CORRAL_HOME): ``start`` must bring a dumped app back through ``corral
resurrect``, ``stop`` must end the daemon. The init system itself is never
involved: the scripts are run with ``sh``, OpenRC's and rc.subr's functions
stubbed.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

import corral
from corral.plugins.startup import StartupContext, render
from corral.rpc.wire import pid_alive
from tests.conftest import APPS, wait_for
from tests.plugins.startup.conftest import SHELL_SCRIPTS

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)


def analyze(unit: Path) -> subprocess.CompletedProcess:
    return run([SYSTEMD_ANALYZE, "verify", str(unit)])


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory) -> None:
    """Skip unless systemd-analyze can verify a known-good unit here."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed")
    probe = tmp_path_factory.mktemp("probe") / "probe.service"
    probe.write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    done = analyze(probe)
    if done.returncode != 0 or done.stderr.strip():
        pytest.skip(f"systemd-analyze cannot verify units here: {done.stderr.strip()[:200]}")


@pytest.mark.parametrize("user_mode", [False, True], ids=["system", "user"])
def test_systemd_analyze_accepts_the_unit(analyzer, manager, tmp_path, no_corral_home, user_mode):
    # ExecStart points at this install's corral script, a real file
    context = StartupContext.build(user="root", hp=tmp_path, user_mode=user_mode)
    assert Path(context.corral_bin).exists()
    script = render("systemd", context, manager)
    unit = tmp_path / script.path.name
    unit.write_text(script.content)
    done = analyze(unit)  # a user unit is checked by the system manager's rules: no --user bus here
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr


def test_systemd_analyze_would_catch_a_mistake(analyzer, manager, alice, tmp_path):
    unit = tmp_path / "broken.service"
    unit.write_text(render("systemd", alice, manager).content.replace("PIDFile=", "PIDFle="))
    assert "Unknown key" in analyze(unit).stderr


@pytest.mark.parametrize("init_system", SHELL_SCRIPTS)
def test_shell_scripts_parse(init_system, manager, alice, tmp_path):
    script = render(init_system, alice, manager)
    path = tmp_path / script.path.name
    path.write_text(script.content)
    done = run(["sh", "-n", str(path)])
    assert done.returncode == 0, done.stderr
    if shutil.which("bash"):
        assert run(["bash", "-n", str(path)]).returncode == 0


def test_launchd_plist_parses(manager, alice):
    script = render("launchd", alice, manager)
    plist = plistlib.loads(script.content.encode())
    assert plist["Label"] == "corral.alice"
    assert plist["ProgramArguments"] == [alice.corral_bin, "resurrect"]
    assert plist["EnvironmentVariables"] == {
        "PATH": alice.path_env,
        "CORRAL_HOME": str(alice.home),
    }
    assert plist["RunAtLoad"] is True and "KeepAlive" not in plist
    assert plist["UserName"] == "alice"
    assert script.enable == [["launchctl", "load", "-w", str(script.path)]]


# -- running the scripts ----------------------------------------------------------------------

OPENRC_STUBS = 'ebegin() { echo "* $*"; }\neend() { return "$1"; }\n'
RC_SUBR_STUB = """\
load_rc_config() { :; }
run_rc_command() {
    case "$1" in
        start) $start_cmd ;;
        stop) $stop_cmd ;;
        status) $status_cmd ;;
        reload) $reload_cmd ;;
    esac
}
"""


def script_runner(init_system: str, content: str, tmp_path: Path):
    """A function running one action of the script the way its init system would."""
    path = tmp_path / f"corral-{init_system}"
    if init_system == "openrc":
        path.write_text(content)
        driver = tmp_path / "openrc-driver"
        driver.write_text(f'{OPENRC_STUBS}. "{path}"\n"$1"\n')
        return lambda action: run(["sh", str(driver), action])
    if init_system == "rcd":
        stub = tmp_path / "rc.subr"
        stub.write_text(RC_SUBR_STUB)
        content = content.replace(". /etc/rc.subr", f". {stub}")
    path.write_text(content)
    return lambda action: run(["sh", str(path), action])


def daemon_pid(home: Path) -> int | None:
    try:
        return int((home / "corral.pid").read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.skipif(os.geteuid() != 0, reason="the scripts su to the user: needs root")
@pytest.mark.skipif(shutil.which("su") is None, reason="su is not installed")
@pytest.mark.parametrize("init_system", SHELL_SCRIPTS)
def test_script_start_resurrects_and_stop_kills(init_system, manager, corral_home, tmp_path):
    with corral.connect(no_daemon=True, plugins=[]) as client:
        client.start(str(APPS / "sleeper.py"), {"name": "kept"})
        client.dump()
    context = StartupContext.build()  # root, on the test's CORRAL_HOME
    assert context.home == corral_home
    action = script_runner(init_system, render(init_system, context, manager).content, tmp_path)

    started = action("start")
    assert started.returncode == 0, started.stdout + started.stderr
    pid = daemon_pid(corral_home)
    assert pid_alive(pid)
    client = corral.connect()
    try:
        assert [(i.name, i.status) for i in client.list()] == [("kept", "online")]
    finally:
        client.disconnect()
    if init_system in ("upstart", "systemv", "rcd"):
        status = action("status")
        assert status.returncode == 0 and "kept" in status.stdout, status.stdout

    stopped = action("stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(lambda: not pid_alive(pid), what="the daemon to exit")
    if init_system in ("upstart", "systemv"):
        assert action("status").returncode == 3  # LSB: not running


@pytest.mark.skipif(os.geteuid() != 0, reason="the scripts su to the user: needs root")
@pytest.mark.parametrize("init_system", ["upstart", "openrc"])
def test_script_start_without_a_dump_still_runs_the_daemon(
    init_system, manager, corral_home, tmp_path
):
    context = StartupContext.build()
    action = script_runner(init_system, render(init_system, context, manager).content, tmp_path)
    started = action("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "nothing to resurrect" in started.stderr
    pid = daemon_pid(corral_home)
    assert pid_alive(pid)
    assert action("stop").returncode == 0
    wait_for(lambda: not pid_alive(pid), what="the daemon to exit")
