"""App output at its edges, through a real daemon and real children.

- A line up to 1 MiB (corral.supervisor.logs.MAX_LINE) reaches the file whole; a longer
  one is cut in pieces of exactly 1 MiB, none empty, that join back to it.
- Output without a newline (``10%\\r20%\\r`` progress) is in the file within
  a fraction of a second, so a daemon SIGKILLed later loses none of it, and
  the next daemon's lines start on a line of their own.
- ``corral logs`` (a subprocess, tail and ``-f``) never sends the apps' escape
  sequences or control characters to the terminal, unless ``--raw``.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import corral
from corral import paths
from corral.cli.render import printable
from corral.supervisor.logs import MAX_LINE
from tests.conftest import python_app, wait_for
from tests.core.test_daemon import alive, reap

SIZES = (1_000_000, MAX_LINE, MAX_LINE + 1, 3_000_000)
PATTERN = "import string\nPATTERN = (string.ascii_letters + string.digits) * (3_000_100 // 62)\n"


def line_of(size: int) -> bytes:
    namespace: dict = {}
    exec(PATTERN, namespace)
    return namespace["PATTERN"][size % 7 : size % 7 + size].encode()


def file_bytes(path: str | None) -> bytes:
    try:
        return Path(path or "").read_bytes()
    except FileNotFoundError:
        return b""


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CORRAL_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], env=env, capture_output=True, timeout=60
    )


def test_long_lines_whole_up_to_the_limit_then_cut_in_pieces(pm, tmp_path):
    body = (
        "import sys\n" + PATTERN + f"for size in {SIZES!r}:\n"
        "    sys.stdout.write(PATTERN[size % 7 : size % 7 + size] + '\\n')\n"
        "sys.stdout.write('end\\n')\nsys.stdout.flush()\n"
        "import time\nwhile True:\n    time.sleep(1)\n"
    )
    info = pm.start(python_app(tmp_path, "long.py", body), {"name": "long"})[0]
    data = wait_for(
        lambda: (d := file_bytes(info.out_log)).endswith(b"\nend\n") and d,
        timeout=30,
        what="the long lines in the file",
    )
    lines = data.split(b"\n")[:-1]
    assert b"" not in lines  # no empty line made by a cut
    expected_pieces = [1, 1, 2, 3]
    for size, pieces in zip(SIZES, expected_pieces, strict=True):
        got, lines = lines[:pieces], lines[pieces:]
        assert b"".join(got) == line_of(size), f"a {size}-byte line is not whole"
        assert [len(p) for p in got[:-1]] == [MAX_LINE] * (pieces - 1)
    assert lines == [b"end"]


def test_progress_reaches_the_file_before_the_daemon_is_killed(corral_home, pm, tmp_path):
    marker = tmp_path / "ran-once"
    body = (
        "import pathlib, sys, time\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "if marker.exists():\n"
        "    print('started again', flush=True)\n"
        "else:\n"
        "    marker.touch()\n"
        "    sys.stdout.write('10%\\r20%\\r30%\\r')\n"
        "    sys.stdout.flush()\n"
        "while True:\n    time.sleep(1)\n"
    )
    info = pm.start(python_app(tmp_path, "progress.py", body), {"name": "progress"})[0]
    began = time.monotonic()
    wait_for(lambda: file_bytes(info.out_log) == b"10%\r20%\r30%\r", timeout=3, what="progress")
    latency = time.monotonic() - began
    assert latency < 2.0

    daemon = int(paths.pid_file(corral_home).read_text().split()[0])
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: (reap(daemon), not alive(daemon))[1], what="daemon gone")
    assert file_bytes(info.out_log) == b"10%\r20%\r30%\r"

    # the next daemon's first line for that file starts on a new line
    pm.disconnect()
    client = corral.connect()
    try:
        wait_for(lambda: client.describe("progress"), what="the app taken over")
        client.restart("progress")
        wait_for(lambda: file_bytes(info.out_log).endswith(b"started again\n"), what="second run")
        assert file_bytes(info.out_log) == b"10%\r20%\r30%\r\nstarted again\n"
    finally:
        client.kill_daemon()
        client.disconnect()


NOISY = "\x1b[31mred\x1b[0m \x1b]0;owned\x07title \x1b[2Jcleared\x07 \x1b]52;c;Zm9v\x07end"


def test_corral_logs_prints_no_escape_sequences_unless_raw(corral_home, pm, tmp_path):
    body = (
        "import time\n"
        f"print({NOISY!r}, flush=True)\n"
        "n = 0\n"
        "while True:\n"
        "    n += 1\n"
        "    print(f'tick {n} \\x1b[32mgreen\\x1b[0m\\x1b[1A', flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    info = pm.start(python_app(tmp_path, "noisy.py", body), {"name": "noisy"})[0]
    wait_for(lambda: b"tick 2" in file_bytes(info.out_log), what="noisy output")

    shown = cli(corral_home, "logs", "noisy", "--nostream", "--lines", "1000")
    assert shown.returncode == 0, shown.stderr
    assert b"red title cleared" in shown.stdout and b"green" in shown.stdout
    assert b"\x1b" not in shown.stdout and b"\x07" not in shown.stdout

    raw = cli(corral_home, "logs", "noisy", "--nostream", "--raw", "--lines", "1000")
    assert b"\x1b[32mgreen" in raw.stdout

    follow = subprocess.Popen(
        [sys.executable, "-m", "corral", "logs", "noisy", "-f", "--lines", "0"],
        env=dict(os.environ, CORRAL_HOME=str(corral_home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        out = read_until(follow, lambda data: data.count(b"green") >= 3, timeout=20)
    finally:
        follow.kill()
        follow.wait()
        follow.stdout.close()
    assert b"tick" in out and b"\x1b" not in out


def read_until(proc: subprocess.Popen, done, timeout: float) -> bytes:
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"not seen within {timeout} s: {data[-300:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"the command ended: {data[-300:]!r}")
            data += chunk
    return data


@pytest.mark.parametrize(
    "line, shown",
    [
        ("\x1b[1;31mERROR\x1b[0m x", "ERROR x"),
        ("a\x1b]8;;https://e.x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),
        ("\x1bPq#0;2;0;0;0\x1b\\sixel", "sixel"),
        ("\x9b2Jclear", "clear"),
        ("10%\r20%\r30%", "30%"),
        ("long line\rshort", "shortline"),
        (
            "tab\tkept, bell\x07 nul\x00 del\x7f lone\x1b",
            "tab\tkept, bell\\x07 nul\\x00 del\\x7f lone\\x1b",
        ),
        ("héllo wörld", "héllo wörld"),
    ],
)
def test_printable(line, shown):
    assert printable(line) == shown
