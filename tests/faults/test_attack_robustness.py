"""A stranger's attacks on the hardened corral (branch h/attack2).

Each test is one finding: it failed on the merged main before its fix, or is
marked xfail(strict=True) with what is still wrong.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corral
from tests.conftest import python_app, wait_for
from tests.faults.test_cgroups import _writable

cgroups = pytest.mark.skipif(not _writable(), reason="needs a writable cgroup v2 hierarchy")

FIVE = "\uff15"  # FULLWIDTH DIGIT FIVE: str.isdigit() is true, it is no pm_id
SLEEP = shutil.which("sleep") or "/bin/sleep"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=60
    )


# -- names that look like digits --------------------------------------------------------


def test_a_name_of_non_ascii_digits_is_a_name_on_the_command_line(corral_home):
    """`check_name` accepts "\\uff15" (a fullwidth digit: not a pm_id), but the CLI turned the
    target "\\uff15" into pm_id 5 (``int("\\uff15") == 5``), so the app could not be reached by its
    name: the shadowing check_name exists to prevent."""
    pm = corral.connect()
    try:
        for i in range(6):  # pm_ids 0..5; pm_id 0 is named FIVE
            pm.start(SLEEP, {"name": f"app-{i}" if i else FIVE, "args": ["3600"]})
        result = cli("stop", FIVE)
        assert result.returncode == 0, result.stderr
        assert pm.describe(FIVE)[0].status == "stopped"
        assert pm.describe(5)[0].status == "online"  # pm_id 5 was stopped instead
    finally:
        pm.kill_daemon()


# -- config files ------------------------------------------------------------------------

HUGE = "9" * 5000  # over Python's 4300-digit limit for int(str)
CONFIGS = {
    "big.json": '{"apps": [{"name": "x", "script": "%s", "kill_timeout": %s}]}',
    "big.yaml": "apps:\n- name: x\n  script: %s\n  kill_timeout: %s\n",
    "big.toml": '[[apps]]\nname = "x"\nscript = "%s"\nkill_timeout = %s\n',
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_number_too_long_for_python_is_a_one_line_config_error(corral_home, tmp_path, name):
    """A config file holding an integer of more than 4,300 digits made `corral start`
    print a 20-line ValueError traceback (json, yaml and toml alike)."""
    path = tmp_path / name
    path.write_text(CONFIGS[name] % (SLEEP, HUGE))
    result = cli("start", str(path))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "4300 digits" in lines[0], lines


# -- cgroups -----------------------------------------------------------------------------

HELPED = """\
import os, time
import corral.child
if os.fork() == 0:  # a helper in a session of its own: the child's cgroup holds it
    os.setsid()
    time.sleep(3600)
    os._exit(0)
corral.child.ready()
time.sleep(3600)
"""


def _cgroups_of(home: Path) -> list[Path]:
    parent = Path((home / "cgroup.path").read_text().strip())
    return [d for d in parent.iterdir() if d.is_dir()]


@cgroups
def test_reloads_leave_no_empty_cgroups_behind(pm, corral_home, tmp_path):
    """A reload stopped the old instance (and its helper) through its cgroup but never
    removed that cgroup: each reload of an app with a descendant left empty cgroups in
    the home's parent until the next stop (26 reloads of 4 instances: 58 empty ones)."""
    app = python_app(tmp_path, "helped.py", HELPED)
    options = {"exec_mode": "cluster", "instances": 4, "listen": "127.0.0.1:0"}
    pm.start(app, {"name": "web", "wait_ready": True, "kill_timeout": 500, **options})
    for _ in range(6):
        pm.reload("web")
    # each instance's cgroup, the nursery the daemon waits in and the spare made ahead
    expected = 4 + 2
    try:
        wait_for(lambda: len(_cgroups_of(corral_home)) <= expected, timeout=10)
    finally:
        print(
            [(d.name, (d / "cgroup.procs").read_text().split()) for d in _cgroups_of(corral_home)]
        )
    assert {p.status for p in pm.list()} == {"online"}


# -- bounded input -----------------------------------------------------------------------

DEAF = """\
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def test_requests_in_progress_are_bounded_per_client(pm, corral_home, tmp_path):
    """Every request became a task with no limit: 100,000 pipelined `stop` of an app that
    takes long to stop grew the daemon from 36 to 594 MiB (the reply backlog is bounded,
    the requests being served were not). 40,000 here: +200 MiB before, now capped."""
    import json

    import psutil
    import zmq

    app = python_app(tmp_path, "deaf.py", DEAF)
    (info,) = pm.start(app, {"name": "deaf", "kill_timeout": 60_000})
    # deaf from here: a SIGINT during Python's start-up would end it
    wait_for(lambda: "ready" in Path(info.out_log).read_text(), timeout=10)
    daemon = psutil.Process(int((corral_home / "corral.pid").read_text()))
    before = daemon.memory_info().rss
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{corral_home}/rpc.sock")
    try:
        stop = {"cmd": "stop", "args": {"target": "deaf"}}
        for i in range(40_000):
            sock.send(json.dumps({"id": i, **stop}).encode())
        peak, last, still = 0, 0, 0
        while still < 3:  # until the daemon has read everything and stopped growing
            time.sleep(0.5)
            rss = daemon.memory_info().rss
            still = still + 1 if rss - last < 1 << 20 else 0
            peak, last = max(peak, rss), rss
        assert pm.describe("deaf")[0].status == "stopping"
        grown = (peak - before) >> 20
        assert grown < 100, f"daemon grew by {grown} MiB"
    finally:
        sock.close(0)
        ctx.term()
        daemon.kill()  # not kill_daemon: the stop waits 60 s for the deaf app


@cgroups
@cgroups
def test_a_crash_loop_does_not_pile_up_the_runs_descendants(pm, corral_home):
    """A run that leaves a detached helper and crashes: each policy restart used to keep
    the old run's helper (and its cgroup) alive, so a crash loop grew without bound (959
    processes and 959 cgroups after 8 s with 4 instances and restart_delay 0). Now, as
    systemd does, what an exited run left in its cgroup ends before the restart; PM2
    leaks them."""
    import psutil

    marker = "307.5"
    script = f"(sleep {marker} &); sleep 0.2; exit 1"
    options = {"name": "c", "args": ["-c", script], "min_uptime": 100, "restart_delay": 0}
    pm.start("/bin/sh", {**options, "max_restarts": 1000})
    wait_for(lambda: pm.describe("c")[0].restart_time >= 10, timeout=30)

    def helpers() -> list[int]:
        return [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if (p.info["cmdline"] or [])[-1:] == [marker]
        ]

    try:
        assert len(helpers()) <= 2, f"{len(helpers())} helpers of exited runs still run"
    finally:
        pm.kill_daemon()
        wait_for(lambda: not helpers(), timeout=10)


# -- names that reach the terminal -------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["ev\x1b]0;TITLE\x07il", "two\nlines", "bell\x07", "rtl\u202eevil"]
)
def test_a_name_with_control_characters_is_refused(pm, name):
    """`corral start x --name "$(printf 'ev\\e]0;TITLE\\ail')"` was accepted, and `corral
    start`/`ls` then wrote the OSC sequence to the terminal (`logs` filters an app's output,
    nothing filtered names): a config file from a cloned project could retitle, hide rows
    or set the clipboard (OSC 52). Refused now, naming the field; the name is shown escaped."""
    with pytest.raises(corral.errors.OptionError) as caught:
        pm.start(SLEEP, {"name": name, "args": ["3600"]})
    assert caught.value.field == "name"
    assert "\x1b" not in str(caught.value) and "\n" not in str(caught.value)
    assert pm.list() == []


def test_names_and_arguments_are_shown_as_text_not_markup_nor_escapes(pm):
    """An app named "[/]" (or with an argument "[/link]") made `corral ls`, `start` and
    `describe` die with a rich MarkupError traceback: every `ls` failed while it existed.
    A namespace (not checked like names) sent its escape sequence to the terminal."""
    pm.start(SLEEP, {"name": "[/]", "args": ["3600"]})
    pm.start(SLEEP, {"name": "b[bold]", "args": ["3600", "[/link]"]})
    pm.start(SLEEP, {"name": "n", "namespace": "n\x1b]0;TITLE\x07s", "args": ["3600"]})
    for args in (["ls"], ["describe", "[/]"], ["describe", "b[bold]"], ["describe", "n"]):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    shown = cli("describe", "b[bold]").stdout
    assert "b[bold]" in shown and "[/link]" in shown
    assert "[/]" in cli("ls").stdout


def test_a_target_not_found_names_a_few_apps_not_all(pm):
    """ "no process matches 'x' (names: ...)" listed every name, whole: with 300 apps of
    long names the one-line error was 60 KB (errors.shorten cut only the target)."""
    pm.start(
        [{"name": f"{i:03d}-" + "n" * 200, "script": SLEEP, "args": ["3600"]} for i in range(300)]
    )
    with pytest.raises(corral.errors.NotFoundError) as caught:
        pm.stop("nosuch")
    message = str(caught.value)
    assert len(message) < 1000, len(message)
    assert "000-nnn" in message and "(300 names)" in message


@pytest.mark.parametrize("field", ["script", "cwd"])
def test_a_path_too_long_for_the_os_is_a_short_error(pm, field):
    """A script or cwd with a component over 255 bytes was "internal error: OSError:
    [Errno 36] File name too long: '...'" echoing the path whole (100 KB in one line)."""
    long_path = "/tmp/" + "x" * 100_000
    script, options = (long_path, {}) if field == "script" else (SLEEP, {"cwd": long_path})
    with pytest.raises(corral.errors.CorralError) as caught:
        pm.start(script, {"name": "app", **options})
    message = str(caught.value)
    assert len(message) < 500 and "internal error" not in message, message[:300]
    assert "File name too long" in message
    assert pm.list() == []
