"""Bounded input: what one client or one file can make the daemon or the CLI hold.

A frame over the wire's limit is refused by zmq before it is buffered; a
client that pipelines requests and never reads its replies gets a bounded
backlog, not the daemon's memory; a config file nested too deep or built
from YAML aliases ("billion laughs") is refused in one line, quickly; an
error message echoes at most a couple of hundred characters of its input.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from corral.errors import shorten
from corral.rpc.wire import MAX_FRAME

PY = sys.executable
SLEEP = shutil.which("sleep") or "/bin/sleep"
MiB = 1024 * 1024


def peak_rss(pid: int) -> int:
    """The most memory ``pid`` ever held (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# -- the unix socket -------------------------------------------------------------------


def test_a_frame_over_the_limit_is_refused_unbuffered(pm, raw) -> None:
    pm.start(SLEEP, {"name": "up", "args": ["3600"]})
    before = peak_rss(pm.daemon_pid)
    frame = b"x" * (8 * MAX_FRAME)  # 128 MiB of one frame, streamed at the socket
    raw.send(frame, copy=False)
    del frame
    # the daemon answers nothing to it (zmq hangs up on the peer) and goes on
    assert not raw.poll(3000), "the daemon read a frame over the limit and answered it"
    assert pm.ping()["pid"] == pm.daemon_pid
    assert [p.status for p in pm.list()] == ["online"]
    grown = peak_rss(pm.daemon_pid) - before
    assert grown < 32 * MiB, (
        f"the daemon buffered the frame: its peak RSS grew {grown / MiB:.0f} MiB"
    )


def test_a_client_that_never_reads_gets_a_bounded_backlog(pm, raw) -> None:
    big = "e" * 40_000  # each app's environment: a list reply of ~400 KB
    for n in range(5):
        pm.start(SLEEP, {"name": f"app{n}", "args": ["3600"], "env": {"BIG": big}})
    reply_size = len(pm.jlist_json())
    assert reply_size > 200_000
    daemon = psutil.Process(pm.daemon_pid)
    before = daemon.memory_info().rss
    requests = 5000  # ~2 GB of replies, were they all queued
    for n in range(requests):
        raw.send(json.dumps({"id": n, "cmd": "list"}).encode())
    # poll until the daemon has worked through them (it stops using CPU), or has grown
    # past any bound (as it did before: +1.6 GiB)
    deadline, last = time.monotonic() + 120, -1.0
    while time.monotonic() < deadline:
        time.sleep(0.5)
        spent = sum(daemon.cpu_times()[:2])
        if daemon.memory_info().rss - before > 300 * MiB or spent - last < 0.02:
            break
        last = spent
    grown = daemon.memory_info().rss - before
    assert grown < 200 * MiB, f"the daemon grew {grown / MiB:.0f} MiB for one client's backlog"
    assert pm.ping()["pid"] == pm.daemon_pid
    assert len(pm.list()) == 5


def test_a_client_that_reads_late_still_gets_every_reply(pm, raw) -> None:
    for n in range(3):
        pm.start(SLEEP, {"name": f"app{n}", "args": ["3600"]})
    count = 2000
    for n in range(count):
        raw.send(json.dumps({"id": n, "cmd": "list"}).encode())
    time.sleep(0)  # read nothing until every request is out
    ids = []
    while len(ids) < count and raw.poll(30_000):
        ids.append(json.loads(raw.recv())["id"])
    assert sorted(ids) == list(range(count))


def test_a_request_nested_too_deep_is_a_protocol_error(pm, raw) -> None:
    raw.send(b'{"id": 1, "cmd": "ping", "args": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}")
    assert raw.poll(10_000)
    reply = json.loads(raw.recv())
    assert reply["error"]["type"] == "ProtocolError", reply
    assert "nested too deep" in reply["error"]["message"]
    assert pm.ping()["pid"] == pm.daemon_pid


# -- config files ----------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, float, int]:
    """The CLI's result, its wall time and its peak RSS in bytes."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [PY, "-m", "corral", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    try:
        ps = psutil.Process(proc.pid)
        while proc.poll() is None and time.monotonic() - started < 20:
            try:
                peak = max(peak, ps.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done, time.monotonic() - started, peak


LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["apps:", "  - script: app.py", "    args: *i"]
)


@pytest.mark.parametrize(
    "name, text, words",
    [
        ("deep.json", '{"apps": ' + "[" * 100_000 + "]" * 100_000 + "}", "levels deep"),
        ("deep.yaml", "apps: " + "[" * 100_000 + "]" * 100_000 + "\n", "levels deep"),
        ("deep.toml", "x = " + "[" * 100_000 + "]" * 100_000 + "\n", "levels deep"),
        (
            "shallow-but-deep.json",
            '{"apps": [{"script": "a", "env": ' + "[" * 500 + "]" * 500 + "}]}",
            "levels deep",
        ),
        ("bomb.yaml", LAUGHS, "aliases"),
        (
            "bomb.yml",
            "apps: &x [{script: a.py}]\nz: &z [*x, *x]\nw: [*z, *z, *z]\n"
            + LAUGHS.split("apps:")[0],
            "aliases",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 25 else "",
)
def test_a_config_too_deep_or_too_big_is_refused_in_one_line(
    corral_home: Path, tmp_path: Path, name: str, text: str, words: str
) -> None:
    (tmp_path / name).write_text(text)
    done, took, peak = run_cli("start", name, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert name in lines[0] and words in lines[0], lines[0]
    assert len(lines[0]) < 400, lines[0]
    assert took < 10, f"took {took:.1f} s"
    assert peak < 200 * MiB, f"peak RSS {peak / MiB:.0f} MiB"


def test_a_yaml_file_with_a_few_aliases_still_loads(tmp_path: Path) -> None:
    from corral.options.config import load_config

    path = tmp_path / "ok.yaml"
    path.write_text(
        "base: &base {A: '1', B: '2'}\n"
        "apps:\n"
        "  - {name: one, script: a.py, env: *base}\n"
        "  - {name: two, script: b.py, env: *base}\n"
    )
    apps = load_config(path)
    assert [a["env"] for a in apps] == [{"A": "1", "B": "2"}] * 2


# -- errors echo a bounded part of their input --------------------------------------------


def test_shorten_keeps_short_values_and_cuts_long_ones() -> None:
    assert shorten("web") == "'web'"
    cut = shorten("x" * 100_000)
    assert len(cut) < 260 and cut.endswith("... (100000 chars)")


def test_errors_echo_at_most_a_few_hundred_characters(pm) -> None:
    huge = "y" * 1_000_000
    cases = {
        "target": lambda: pm.stop(huge),
        "kill_signal": lambda: pm.start(SLEEP, {"name": "s", "kill_signal": huge}),
        "listen": lambda: pm.start(SLEEP, {"name": "s", "listen": huge}),
        "log_date_format": lambda: pm.start(SLEEP, {"name": "s", "log_date_format": "%" + huge}),
        "instances": lambda: pm.start(SLEEP, {"name": "s", "instances": huge}),
        "unknown option": lambda: pm.start(SLEEP, {"name": "s", huge: 1}),
        "signal": lambda: pm.send_signal_to_process_name(huge, "all"),
    }
    long = []
    for label, call in cases.items():
        try:
            call()
        except Exception as exc:
            if len(str(exc)) > 600:
                long.append(f"{label}: {len(str(exc))} chars")
        else:
            long.append(f"{label}: did not fail")
    assert not long, long
    assert pm.list() == []
