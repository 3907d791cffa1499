"""``corral ls`` and ``corral jlist`` before click (corral.cli.quick): the same bytes as
the click commands on a real daemon with apps online, stopped, errored and in
cluster mode, at several widths; the click path for anything it does not fully
understand; and few modules loaded."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from corral.cli import quick
from corral.cli.words import EMPTY_HINT
from corral.daemon.homelock import holder
from corral.testing import kill_tree, wait_for
from tests.conftest import APPS
from tests.conftest import run_cli as corral

# the click command of today, with no fast path in front of it
FULL = (
    "import sys\nfrom corral.cli.main import build_cli\n"
    "build_cli().main(sys.argv[1:], prog_name='corral')"
)
NEVER_ON_THE_FAST_PATH = (
    "click",
    "rich",
    "zmq",
    "typing",
    "corral.cli.commands",
    "corral.client.sync",
)


def start(args: tuple[str, ...], env: dict[str, str], full: bool = False) -> subprocess.Popen:
    head = ["-c", FULL] if full else ["-m", "corral"]
    return subprocess.Popen(
        [sys.executable, *head, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def run(args: tuple[str, ...], env: dict[str, str], full: bool = False) -> tuple[int, str, str]:
    return finish(start(args, env, full))


def env_with(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "NO_COLOR", "FORCE_COLOR")}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def same_as_full(args: tuple[str, ...], env: dict[str, str]) -> tuple[int, str, str]:
    """What ``corral ARGS`` printed, once it matched the click command's output: both
    run at once, so that they read the same sample of the figures (the daemon keeps one
    for a second), a few times (an uptime may turn a second between them)."""
    for _ in range(8):
        fast, full = start(args, env), start(args, env, full=True)
        fast, full = finish(fast), finish(full)
        if fast == full:
            return fast
    assert fast == full, f"corral {' '.join(args)}"
    return fast


def loaded(args: tuple[str, ...], env: dict[str, str] | None = None) -> set[str]:
    """The modules ``corral ARGS`` imported (``-X importtime``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "corral", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def in_terminal(
    args: tuple[str, ...], env: dict[str, str], columns: int, full: bool = False
) -> tuple[int, bytes, set[str]]:
    """``corral ARGS`` on a ``columns``-wide pseudo-terminal: its exit code, what the
    terminal received, and the modules it imported (stderr is a pipe)."""
    head = ["-c", FULL] if full else ["-m", "corral"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", *head, *args],
        stdin=slave,
        stdout=slave,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    modules = {line.split("|")[-1].strip() for line in err.decode().splitlines() if "|" in line}
    return proc.returncode, shown, modules


def statuses() -> dict[str, str]:
    return {p["name"]: p["pm2_env"]["status"] for p in json.loads(corral("jlist").stdout)}


@pytest.fixture
def apps(corral_home: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """online (fork and a 2-instance node cluster), stopped, errored."""
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.exit(3)\n")
    sleeper = str(APPS / "sleeper.py")
    corral("start", sleeper, "--name", "web", "--no-wait")
    corral("start", sleeper, "--name", "halted", "--no-wait")
    corral("stop", "halted")
    corral("start", str(crash), "--name", "crasher", "--max-restarts", "2", check=False)
    want = {"web": "online", "halted": "stopped", "crasher": "errored"}
    if shutil.which("node"):
        corral("start", str(APPS / "server.js"), "--name", "clu", "-i", "2", "--no-wait")
        want["clu"] = "online"
    wait_for(lambda: all(statuses().get(k) == v for k, v in want.items()), what=str(want))
    yield want
    corral("kill", check=False)


def test_ls_prints_the_bytes_of_the_click_command(apps):
    names = ("ls", "list", "status", "l", "ps")
    for name in names:
        code, out, err = same_as_full((name,), env_with())
        assert code == 0 and err == "" and out.count("│ online") >= 2, out
    for columns in ("60", "80", "120", "200"):
        for args in (("ls",), ("ls", "--sort", "name:desc"), ("ls", "--sort=restarts")):
            same_as_full(args, env_with(COLUMNS=columns))
    same_as_full(("ls",), env_with(COLUMNS="80", NO_COLOR="1"))
    code, out, _ = same_as_full(("ls",), env_with(FORCE_COLOR="1"))  # rich's colours
    assert code == 0 and "\x1b[" in out


def test_ls_in_a_terminal_prints_the_bytes_of_the_click_command(apps):
    terminals = (
        ({"TERM": "xterm-256color"}, 120),
        ({"TERM": "xterm"}, 80),
        ({"TERM": "screen-16color"}, 60),
        ({"TERM": "xterm-256color", "COLORTERM": "truecolor"}, 100),
        ({"TERM": "xterm", "COLUMNS": "90"}, 120),
    )
    for changes, columns in terminals:
        env = env_with(**changes)
        for _ in range(8):  # both at once: the same sample of the figures (see same_as_full)
            with ThreadPoolExecutor(2) as pool:
                both = [pool.submit(in_terminal, ("ls",), env, columns, f) for f in (False, True)]
                (code, fast, modules), full = both[0].result(), both[1].result()[:2]
            if (code, fast) == full:
                break
        assert (code, fast) == full, changes
        assert code == 0 and b"\x1b[" in fast and b"online" in fast, changes
        assert not modules & set(NEVER_ON_THE_FAST_PATH), changes
    # rich draws these itself: the click command, loaded
    for changes in ({"TERM": "xterm", "NO_COLOR": "1"}, {"TERM": "dumb"}):
        code, shown, modules = in_terminal(("ls",), env_with(**changes), 80)
        assert code == 0 and b"online" in shown and "click" in modules, changes


def test_the_fast_path_loads_neither_click_nor_pyzmq_nor_rich(apps):
    for args in (("ls",), ("status", "--sort", "cpu"), ("jlist",)):
        modules = loaded(args)
        assert "corral.cli.main" in modules, args
        assert not modules & set(NEVER_ON_THE_FAST_PATH), (args, modules)


def test_what_the_fast_path_does_not_understand_goes_to_click(apps):
    for args in (
        ("ls", "--bogus"),
        ("ls", "--help"),
        ("ls", "-m"),
        ("ls", "--sort"),
        ("ls", "--sort", "name", "extra"),
        ("ls", "--address", "tcp://127.0.0.1:1"),
    ):
        same_as_full(args, env_with())
        assert "click" in loaded(args), args
    assert "click" in loaded(("ls",), env_with(FORCE_COLOR="1"))  # rich colours it


def test_a_bad_sort_is_the_same_error_and_starts_no_daemon(corral_home):
    code, out, err = same_as_full(("ls", "--sort", "colour"), env_with())
    assert code == 1 and out == "" and err.startswith("error: --sort takes FIELD[:asc|:desc]")
    assert "click" not in loaded(("ls", "--sort", "colour"))
    assert holder(corral_home) is None


def test_no_daemon_then_an_empty_list(corral_home):
    # as before: `corral ls` with no daemon starts one, and says nothing runs
    code, out, err = run(("ls",), env_with())
    try:
        assert (code, out) == (0, EMPTY_HINT + "\n"), err
        wait_for(lambda: holder(corral_home), what="the daemon ls started")
        for columns in (None, "60", "80"):  # at 60 columns rich wraps the hint
            same_as_full(("ls",), env_with(COLUMNS=columns))
        assert "click" not in loaded(("ls",))
    finally:
        corral("kill", check=False)
        pid = holder(corral_home)
        if pid is not None:
            kill_tree(pid)


def test_a_daemon_of_another_corral_is_left_to_the_full_path_which_warns():
    import corral as me

    here = os.path.realpath(os.path.dirname(me.__file__))
    ours = {"version": me.__version__, "install_path": here}
    assert quick._same_corral(json.dumps(ours).encode())
    assert quick._same_corral(b'{"pid": 1}')  # too old to say: no warning either
    assert not quick._same_corral(json.dumps({**ours, "version": "0.0.1"}).encode())
    assert not quick._same_corral(json.dumps({**ours, "install_path": "/x"}).encode())
    assert not quick._same_corral(None)
    # as the daemon encodes it (compact), read without the json module
    compact = json.dumps({"pid": 1, **ours}, separators=(",", ":")).encode()
    assert quick._same_corral(compact)
    assert not quick._same_corral(compact.replace(me.__version__.encode(), b"0.0.0-other"))
    assert quick._string(compact, b"version") == me.__version__
    assert quick._string(b'{"version":null}', b"version") is None
    assert quick._string(b'{"install_path":"/a\\"b"}', b"install_path") is False
