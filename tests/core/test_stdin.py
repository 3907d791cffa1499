"""A child's stdin (corral.supervisor.stdin): ``send_line``, ``corral send``, ``corral attach``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import corral
from corral.supervisor.stdin import BUFFER_LIMIT, MAX_LINE
from corral.testing import wait_for
from tests.conftest import out_lines

CORRAL = [sys.executable, "-m", "corral"]


def _start(client: corral.Client, app_path, script: str, **options: object):  # type: ignore[no-untyped-def]
    info = client.start(app_path(script), {"name": "echo", **options})[0]
    if script.endswith(".py"):
        wait_for(lambda: "ready" in out_lines(info) or "closed" in out_lines(info), what="app up")
    return info


def _state(client: corral.Client) -> list[tuple[int, str, str, int | None, int]]:
    return [(p.pm_id, p.name, p.status, p.pid, p.restart_time) for p in client.list()]


def test_a_child_stdin_is_a_pipe_and_a_sent_line_reaches_it(pm, app_path) -> None:
    info = _start(pm, app_path, "stdin_echo.py")
    assert stat.S_ISFIFO(os.stat(f"/proc/{info.pid}/fd/0").st_mode)
    assert pm.send_line(0, "hello world") == {"pm_id": 0, "name": "echo", "line": "hello world\n"}
    assert pm.sendLineToStdin(0, "") == {"pm_id": 0, "name": "echo", "line": "\n"}  # PM2's name
    pm.send_line("0", "third")  # an id given as text, as the CLI has it
    wait_for(lambda: out_lines(info)[1:] == ["got: hello world", "got: ", "got: third"])


def test_bad_input_is_one_error_and_changes_nothing(pm, app_path) -> None:
    info = _start(pm, app_path, "stdin_echo.py")
    before = _state(pm)
    cases = [
        ("echo", "x", corral.OptionError, "pm_id must be a process number, not a name"),
        (True, "x", corral.OptionError, "pm_id must be a process number"),
        (-1, "x", corral.OptionError, "pm_id must be a process number"),
        (7, "x", corral.NotFoundError, "no process has pm_id 7"),
        (0, "a\0b", corral.OptionError, "NUL"),
        (0, "x" * (MAX_LINE + 1), corral.OptionError, f"more than {MAX_LINE}"),
        (0, 12, corral.OptionError, "line must be a string"),
    ]
    for pm_id, line, error, words in cases:
        with pytest.raises(error, match=words):
            pm.send_line(pm_id, line)
    pm.send_line(0, "x" * MAX_LINE)  # the limit itself passes
    wait_for(lambda: len(out_lines(info)) == 2)
    assert _state(pm) == before
    pm.stop(0)
    with pytest.raises(corral.StateError, match=r"echo \(pm_id 0\) is stopped, not online"):
        pm.send_line(0, "x")


def test_a_full_stdin_refuses_the_line_naming_the_app_and_never_blocks(pm, app_path) -> None:
    pm.start(app_path("sleeper.py"), {"name": "deaf"})  # never reads its stdin
    line = "y" * MAX_LINE
    sent = 0
    with pytest.raises(corral.StateError, match=r"the stdin of deaf \(pm_id 0\) is full") as err:
        for _ in range(100):
            started = time.monotonic()
            pm.send_line(0, line)
            assert time.monotonic() - started < 2.0  # each answer comes at once
            sent += len(line) + 1
    assert "does not read its stdin" in str(err.value)
    # the kernel pipe (64 KiB here) and the 1 MiB buffer took what they could
    assert BUFFER_LIMIT <= sent <= BUFFER_LIMIT + (1 << 20)
    started = time.monotonic()
    assert pm.ping()["pid"]
    assert pm.list()[0].status == "online"
    assert time.monotonic() - started < 2.0


def test_a_child_that_closed_its_stdin_is_told_apart(pm, app_path) -> None:
    _start(pm, app_path, "stdin_closer.py")
    with pytest.raises(corral.StateError, match=r"echo \(pm_id 0\) has closed its stdin"):
        pm.send_line(0, "anyone?")
    assert pm.list()[0].status == "online"


def test_the_buffer_drains_in_order_once_the_child_reads(pm, app_path, tmp_path: Path) -> None:
    # a reader that starts late: what waited in the buffer arrives whole and in order
    script = tmp_path / "late.py"
    script.write_text(
        "import sys, time\n"
        "time.sleep(1.5)\n"
        "n = 0\n"
        "for line in sys.stdin:\n"
        "    n += 1\n"
        "    if line.startswith('end'):\n"
        "        print(n, len(line), flush=True)\n"
    )
    info = pm.start(str(script), {"name": "late"})[0]
    for i in range(20):
        pm.send_line(0, f"{i:05d}" + "z" * 20000)
    pm.send_line(0, "end")
    assert wait_for(lambda: out_lines(info)) == ["21 4"]


def test_the_daemon_fd_count_is_stable_over_50_restarts(pm, app_path) -> None:
    info = _start(pm, app_path, "stdin_echo.py")
    daemon = psutil.Process(pm.daemon_pid)
    pm.restart(0)
    wait_for(lambda: pm.list()[0].status == "online")
    before = daemon.num_fds()
    for _ in range(50):
        pm.restart(0)
    wait_for(lambda: pm.list()[0].status == "online" and pm.list()[0].pid != info.pid)
    pm.send_line(0, "still here")
    wait_for(lambda: "got: still here" in out_lines(info))
    assert wait_for(lambda: daemon.num_fds() <= before, what=f"{before} fds") is True


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_a_node_cluster_instance_has_a_stdin_too(pm, app_path) -> None:
    infos = pm.start(app_path("stdin_echo.js"), {"name": "echo", "instances": 2})
    assert all(i.pm2_env["exec_mode"] == "cluster_mode" for i in infos)
    wait_for(lambda: all(i.status == "online" for i in pm.list()))
    pm.send_line(1, "to one")
    wait_for(lambda: any("got: to one (instance 1)" in line for line in out_lines(infos[1])))


def _cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_PLUGINS": "bus"}
    return subprocess.run(
        [*CORRAL, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def bus_client(corral_home: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CORRAL_PLUGINS", "bus")
    client = corral.connect()
    yield client
    client.kill_daemon()
    client.disconnect()


def test_cli_send_and_its_errors(bus_client, corral_home: Path, app_path) -> None:
    info = _start(bus_client, app_path, "stdin_echo.py")
    done = _cli(corral_home, "send", "0", "two", "words")
    assert (done.returncode, done.stdout) == (0, "sent 10 bytes to echo (pm_id 0)\n")
    done = _cli(corral_home, "send", "--json", "0", "x")
    assert done.stdout == '{"pm_id": 0, "name": "echo", "line": "x\\n"}\n'
    wait_for(lambda: out_lines(info)[1:] == ["got: two words", "got: x"])
    before = _state(bus_client)
    for args, words in [
        (("echo", "x"), "pm_id must be a process number, not a name"),
        (("3", "x"), "no process has pm_id 3"),
    ]:
        done = _cli(corral_home, "send", *args)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and words in done.stderr
    assert _state(bus_client) == before


def test_attach_with_a_piped_stdin_prints_the_replies_and_ends_at_eof(
    bus_client, corral_home: Path, app_path
) -> None:
    _start(bus_client, app_path, "stdin_echo.py")
    done = _cli(corral_home, "attach", "0", stdin="a\nb\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "got: a\ngot: b\n"
    assert bus_client.list()[0].status == "online"  # detaching leaves it running
    for bad, words in [("x", "not a name"), ("4", "no process has pm_id 4")]:
        done = _cli(corral_home, "attach", bad, stdin="a\n")
        assert done.returncode == 1 and words in done.stderr and done.stdout == ""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_attach_under_tmux_shows_the_replies_and_ctrl_c_detaches(
    bus_client, corral_home: Path, app_path
) -> None:
    info = _start(bus_client, app_path, "stdin_echo.py")
    session = f"corral-stdin-{os.getpid()}"
    command = (
        f"CORRAL_HOME={corral_home} CORRAL_PLUGINS=bus {sys.executable} -m corral attach 0; "
        "echo detached rc=$?; sleep 60"
    )
    tmux = ["tmux", "-L", session]
    subprocess.run([*tmux, "new", "-d", "-s", session, "-x", "80", "-y", "30", command], check=True)
    socket_path = subprocess.run(
        [*tmux, "display-message", "-p", "#{socket_path}"], capture_output=True, text=True
    ).stdout.strip()

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    try:
        wait_for(lambda: "attached to echo (pm_id 0)" in screen(), what="the banner")
        for word in ("first", "second"):
            subprocess.run([*tmux, "send-keys", "-t", session, word, "Enter"], check=True)
        wait_for(lambda: "got: first" in screen() and "got: second" in screen(), what="replies")
        subprocess.run([*tmux, "send-keys", "-t", session, "C-c"], check=True)
        wait_for(lambda: "detached rc=0" in screen(), what="detached")
        assert bus_client.list()[0].pid == info.pid  # the app runs on, untouched
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        if socket_path:  # tmux 3.3 leaves its socket file behind
            Path(socket_path).unlink(missing_ok=True)


def _held_by_daemon(daemon_pid: int, child_pid: int) -> bool:
    """Whether the daemon holds a descriptor of the pipe that is the child's stdin."""
    pipe = os.readlink(f"/proc/{child_pid}/fd/0")
    found = []
    for fd in os.listdir(f"/proc/{daemon_pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{daemon_pid}/fd/{fd}"))
        except OSError:
            continue
    return pipe in found


def test_the_daemon_holds_no_stdin_descriptor_and_the_child_reads_no_end(pm, app_path) -> None:
    info = _start(pm, app_path, "stdin_echo.py")
    assert os.readlink(f"/proc/{info.pid}/fd/0").startswith("pipe:")
    assert not _held_by_daemon(pm.daemon_pid, info.pid)
    for n in range(3):
        pm.send_line(0, f"line {n}")
    wait_for(lambda: out_lines(info)[1:] == ["got: line 0", "got: line 1", "got: line 2"])
    wait_for(lambda: not _held_by_daemon(pm.daemon_pid, info.pid), what="the write end closed")
    pm.send_line(0, "again")  # reopened once more
    wait_for(lambda: out_lines(info)[-1] == "got: again")
    assert "stdin closed" not in out_lines(info) and pm.list()[0].status == "online"


def test_a_line_never_lands_in_a_file_the_child_put_in_place_of_its_stdin(
    pm, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    script = tmp_path / "swap.py"
    script.write_text(
        "import os, sys, time\n"
        f"fd = os.open({str(victim)!r}, os.O_RDWR | os.O_CREAT)\n"
        "os.dup2(fd, 0)\n"
        "print('ready', flush=True)\n"
        "time.sleep(3600)\n"
    )
    info = pm.start(str(script), {"name": "echo"})[0]
    wait_for(lambda: "ready" in out_lines(info))
    with pytest.raises(corral.StateError, match=r"echo \(pm_id 0\) has closed its stdin"):
        pm.send_line(0, "not for that file")
    assert victim.read_bytes() == b"" and pm.list()[0].status == "online"


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv"
)
def test_a_root_daemon_without_cap_sys_ptrace_holds_the_write_end_as_before(
    corral_home, app_path
) -> None:
    # it could not reopen a user= app's /proc/PID/fd/0: every app's stdin is held instead
    subprocess.run(
        ["setpriv", "--bounding-set", "-sys_ptrace", *CORRAL, "ping"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    client = corral.connect()
    try:
        status = Path(f"/proc/{client.daemon_pid}/status").read_text()
        caps = int(next(x for x in status.splitlines() if x.startswith("CapEff:")).split()[1], 16)
        assert not caps >> 19 & 1  # no CAP_SYS_PTRACE
        info = _start(client, app_path, "stdin_echo.py")
        assert _held_by_daemon(client.daemon_pid, info.pid)
        client.send_line(0, "held")
        wait_for(lambda: out_lines(info)[1:] == ["got: held"])
    finally:
        client.kill_daemon()
        client.disconnect()
