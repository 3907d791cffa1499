"""``corral logs``: time order, output modes, and following through flush, rotation,
restarts and new instances, with real daemons and apps printing numbered lines."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from corral.cli.logfiles import backlog, select_sources
from corral.cli.logs import daemon_line
from corral.cli.logtail import FollowedFile, tail_lines, time_reader
from tests.conftest import python_app, wait_for

DEADLINE = 20.0

# Prints "<pm_id> <n>" every 0.25 s; n goes on from a counter file across restarts.
COUNTER = (
    "import os, sys, time\n"
    "state = os.path.join(sys.argv[1], 'count-' + os.environ['pm_id'])\n"
    "n = int(open(state).read()) if os.path.exists(state) else 1\n"
    "while True:\n"
    "    print(os.environ['pm_id'], n, flush=True)\n"
    "    n += 1\n"
    "    with open(state + '.tmp', 'w') as f:\n"
    "        f.write(str(n))\n"
    "    os.replace(state + '.tmp', state)\n"
    "    time.sleep(0.25)\n"
)


def info(name: str, pm_id: int, out: Path, err: Path | None = None, **options) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, pm_id=pm_id, out_log=str(out), err_log=str(err) if err else None, options=options
    )


# -- without a daemon ----------------------------------------------------------------


def test_backlog_merges_timed_lines_of_all_files_in_time_order(tmp_path):
    fmt = "YYYY-MM-DD HH:mm:ss.SSS"
    out, err, other = tmp_path / "a-out.log", tmp_path / "a-err.log", tmp_path / "b-out.log"
    out.write_text("2026-01-01 10:00:00.100: one\n2026-01-01 10:00:00.400: four\n")
    err.write_text("2026-01-01 10:00:00.200: two\n2026-01-01 10:00:00.500: five\n")
    other.write_text("2026-01-01 10:00:00.300: three\n")
    sources = select_sources(
        [
            info("a", 0, out, err, log_date_format=fmt),
            info("b", 1, other, log_date_format=fmt),
        ],
        only=None,
        home=None,
    )
    shown = [
        (e.source.prefix, e.source.stream, e.line.split(": ", 1)[1]) for e in backlog(sources, 15)
    ]
    assert shown == [
        ("0|a", "out", "one"),
        ("0|a", "err", "two"),
        ("1|b", "out", "three"),
        ("0|a", "out", "four"),
        ("0|a", "err", "five"),
    ]
    for source in sources:
        source.follower.close()


def test_backlog_without_times_shows_files_oldest_modified_first(tmp_path):
    new, old = tmp_path / "new.log", tmp_path / "old.log"
    new.write_text("n1\nn2\n")
    old.write_text("o1\no2\no3\n")
    os.utime(old, (1000, 1000))
    sources = select_sources([info("new", 0, new), info("old", 1, old)], only=None, home=None)
    assert [e.line for e in backlog(sources, 2)] == ["o2", "o3", "n1", "n2"]
    for source in sources:
        source.follower.close()


@pytest.mark.parametrize(
    ("options", "line", "expected"),
    [
        ({"time": True}, "2026-03-04T05:06:07: hi", "2026-03-04T05:06:07"),
        ({"log_date_format": "DD/MM/YYYY HH:mm"}, "04/03/2026 05:06: hi", "2026-03-04T05:06:00"),
        (
            {"log_date_format": "%Y-%m-%d %H:%M:%S"},
            "2026-03-04 05:06:07: hi",
            "2026-03-04T05:06:07",
        ),
        ({"log_type": "json"}, '{"message":"hi","timestamp":"2026-03-04T05:06:07.000Z"}', None),
        ({}, "2026-03-04T05:06:07: no format, no time", "none"),
    ],
)
def test_the_time_of_a_line_is_read_from_what_the_daemon_wrote(options, line, expected):
    from datetime import datetime, timezone

    found = time_reader(options)(line)
    if expected == "none":
        assert found is None
    elif expected is None:  # json records carry UTC
        assert found == datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc).timestamp()
    else:
        assert found == datetime.fromisoformat(expected).timestamp()


def test_corral_log_records_read_as_one_liners():
    record = {"event": "spawned", "level": "info", "timestamp": "2026-01-01T12:00:01.5"}
    record.update(name="web", pm_id=0, pid=123, reason="a b")
    assert daemon_line(json.dumps(record)) == (
        '12:00:01 info spawned name=web pm_id=0 pid=123 reason="a b"'
    )
    assert daemon_line("not json") == "not json"


def test_a_file_truncated_and_regrown_between_polls_is_read_from_its_start(tmp_path):
    path = tmp_path / "a.log"
    path.write_text("line 1\nline 2\n")
    followed = FollowedFile(str(path))
    followed.start_at_end()
    with path.open("r+") as f:  # flush, then more lines than were there, before the next poll
        f.truncate(0)
        f.write("line 3\nline 4 is longer\nline 5\n")
    assert followed.read_lines() == ["line 3", "line 4 is longer", "line 5"]
    followed.close()


def test_tail_lines_keeps_a_last_partial_line(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"".join(b"%d\n" % i for i in range(100_000)) + b"part")
    assert tail_lines(path, 2) == ["99999", "part"]


def test_output_modes_json_format_timestamp_and_the_daemon_log(tmp_path):
    from tests.core.test_cli import FakeClient, FakeInfo, invoke

    fmt = "YYYY-MM-DD HH:mm:ss"
    out, err = tmp_path / "web-out.log", tmp_path / "web-error.log"
    out.write_text("2026-01-01 10:00:01: hello\n")
    err.write_text("2026-01-01 10:00:02: oops\n")
    record = {"event": "spawned", "level": "info", "timestamp": "2026-01-01T10:00:00"}
    (tmp_path / "corral.log").write_text(json.dumps({**record, "pm_id": 0}) + "\n")
    web = FakeInfo(out_log=str(out), err_log=str(err), options={"log_date_format": fmt})
    client = FakeClient([web], home=tmp_path)

    text = invoke(client, "logs", "--nostream").output.splitlines()
    assert text == [
        "corral | 10:00:00 info spawned pm_id=0",
        "0|web  | 2026-01-01 10:00:01: hello",
        "0|web  | 2026-01-01 10:00:02: oops",
    ]
    records = [
        json.loads(line)
        for line in invoke(client, "logs", "--nostream", "--json").output.splitlines()
    ]
    assert [(r["app"], r["pm_id"], r["stream"]) for r in records] == [
        ("corral", None, "corral"),
        ("web", 0, "out"),
        ("web", 0, "err"),
    ]
    assert records[1]["line"] == "2026-01-01 10:00:01: hello"
    assert records[1]["time"].startswith("2026-01-01T10:00:01")
    formatted = invoke(client, "logs", "web", "--nostream", "--format").output.splitlines()
    assert formatted[0].startswith("timestamp=2026-01-01-10:00:01")
    assert formatted[0].endswith(" app=web id=0 type=out message=2026-01-01 10:00:01: hello")
    assert " type=error message=" in formatted[1]
    stamped = invoke(client, "logs", "web", "--nostream", "--err", "--timestamp", "HH:mm:ss")
    assert stamped.output == "10:00:02 0|web | 2026-01-01 10:00:02: oops\n"
    from corral.errors import CorralError

    client.raises = CorralError("no process matches 'corral'")  # no app is named corral
    only_daemon = invoke(client, "logs", "corral", "--nostream").output
    assert only_daemon == "corral | 10:00:00 info spawned pm_id=0\n"


# -- with a daemon ----------------------------------------------------------------------


def corral_logs(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "corral", "logs", *args],
        env=dict(os.environ, CORRAL_HOME=str(home)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


class Reader:
    """The lines a follower prints, read with deadlines."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._buffer = b""

    def until(self, done, what: str) -> list[str]:
        end = time.monotonic() + DEADLINE
        while not done(self.lines):
            if time.monotonic() > end:
                raise AssertionError(f"no {what} in {self.lines[-10:]!r}")
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
            if ready and not chunk:
                raise AssertionError(f"logs ended: {self.proc.stderr.read()!r}")
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [line.decode() for line in complete]
        return self.lines

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=DEADLINE)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def numbers(lines: list[str], pm_id: int = 0) -> list[int]:
    found = []
    for line in lines:
        words = line.split()
        if len(words) == 2 and words[0] == str(pm_id):
            found.append(int(words[1]))
    return found


def assert_contiguous(found: list[int]) -> None:
    assert found, "no numbered line"
    assert found == list(range(found[0], found[0] + len(found))), f"gap or repeat: {found}"


def last_number(lines: list[str], pm_id: int = 0) -> int:
    found = numbers(lines, pm_id)
    return found[-1] if found else 0


@pytest.fixture
def counter(tmp_path):
    return python_app(tmp_path, "counter.py", COUNTER)


def test_following_survives_flush_rotation_and_restart(
    corral_home, with_logrotate, pm, counter, tmp_path
):
    app = pm.start(counter, {"name": "count", "args": [str(tmp_path)]})[0]
    wait_for(lambda: b"0 4\n" in Path(app.out_log).read_bytes(), what="4 lines")
    reader = Reader(corral_logs(corral_home, "count", "--raw", "--out", "--lines", "3"))
    try:
        seen = reader.until(lambda lines: len(numbers(lines)) >= 5, "5 lines")
        # flush right after a line was shown: the next one comes 0.25 s later
        mark = last_number(seen)
        reader.until(lambda lines: last_number(lines) > mark, "a new line")
        pm.flush("count")
        mark = last_number(reader.lines)
        reader.until(lambda lines: last_number(lines) > mark + 3, "lines after the flush")
        # external rotation: mv, then reload-logs
        os.rename(app.out_log, app.out_log + ".1")
        pm.reload_logs()
        mark = last_number(reader.lines)
        reader.until(lambda lines: last_number(lines) > mark + 3, "lines after a rotation")
        assert Path(app.out_log).exists() and Path(app.out_log + ".1").exists()
        pm.restart("count")
        mark = last_number(reader.lines)
        reader.until(lambda lines: last_number(lines) > mark + 3, "lines after a restart")
        assert reader.stop() == 130
        assert reader.proc.stderr.read() == b""
    finally:
        reader.stop()
    assert_contiguous(numbers(reader.lines))


def test_following_survives_the_logrotate_plugin(corral_home, counter, tmp_path):
    import corral

    client = corral.connect(plugins=["logrotate"])
    reader = None
    try:
        app = client.start(counter, {"name": "count", "args": [str(tmp_path)]})[0]
        wait_for(lambda: b"0 2\n" in Path(app.out_log).read_bytes(), what="2 lines")
        reader = Reader(corral_logs(corral_home, "0", "--raw", "--out", "--lines", "1"))
        for _ in range(3):
            mark = last_number(reader.until(lambda lines: numbers(lines), "a line"))
            client.call("logrotate_rotate", target=0)
            reader.until(lambda lines, m=mark: last_number(lines) > m + 2, "lines after rotating")
        rotated = [p for p in Path(app.out_log).parent.iterdir() if "__" in p.name]
        assert len(rotated) == 3
    finally:
        if reader is not None:
            reader.stop()
        client.kill_daemon()
        client.disconnect()
    assert_contiguous(numbers(reader.lines))


def test_new_instances_are_followed_from_their_first_line(pm, corral_home, counter, tmp_path):
    pm.start(counter, {"name": "count", "args": [str(tmp_path)], "merge_logs": False})
    wait_for(lambda: (tmp_path / "count-0").exists(), what="the first instance")
    reader = Reader(corral_logs(corral_home, "count", "--json", "--lines", "0"))
    try:
        reader.until(lambda lines: len(lines) >= 2, "2 records")
        pm.scale("count", 3)
        reader.until(
            lambda lines: all(len(numbers(shown(lines), i)) >= 3 for i in (1, 2)),
            "the new instances' lines",
        )
    finally:
        reader.stop()
    records = [json.loads(line) for line in reader.lines]
    assert {r["app"] for r in records} == {"count"}
    assert {tuple(sorted(r)) for r in records} == {("app", "line", "pm_id", "stream", "time")}
    assert all(r["time"] for r in records)  # while following, the time a line was read
    for pm_id in (1, 2):
        found = numbers(shown(reader.lines), pm_id)
        assert found[0] == 1, f"instance {pm_id} not followed from its first line: {found}"
        assert_contiguous(found)
    assert_contiguous(numbers(shown(reader.lines), 0))


def shown(lines: list[str]) -> list[str]:
    return [json.loads(line)["line"] for line in lines]


def test_nostream_into_a_closed_pipe_exits_0_quietly(pm, corral_home, tmp_path):
    body = "import sys, time\nfor i in range(3000):\n    print('x' * 100, i)\nsys.stdout.flush()\n"
    body += "time.sleep(600)\n"
    app = pm.start(python_app(tmp_path, "many.py", body), {"name": "many"})[0]
    wait_for(lambda: b" 2999\n" in Path(app.out_log).read_bytes(), what="3000 lines")
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    run = subprocess.run(
        [
            "bash",
            "-c",
            f"{sys.executable} -m corral logs --nostream --lines 3000 | head -1;"
            " echo status=${PIPESTATUS[0]}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.splitlines()[-1] == "status=0", run.stdout[-300:] + run.stderr
    assert run.stderr == ""


def test_logs_follows_in_a_terminal_with_prefixes_and_ctrl_c_ends_it(
    pm, corral_home, counter, tmp_path
):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    for name in ("alpha", "beta", "gamma"):
        pm.start(counter, {"name": name, "args": [str(tmp_path)]})
    session = f"logs-{os.getpid()}"
    # the tmux server may be older than this test: its environment is not ours
    command = f"CORRAL_HOME={corral_home} {sys.executable} -m corral logs; echo EXIT=$?; sleep 60"
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    subprocess.run(
        ["tmux", "new", "-d", "-s", session, "-x", "80", "-y", "30", command], env=env, check=True
    )

    def screen() -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout

    try:

        def three() -> str:
            text = screen()
            return text if all(f"|{n} " in text for n in ("alpha", "beta", "gamma")) else ""

        text = wait_for(
            three,
            what="prefixed lines of the three apps",
            timeout=DEADLINE,
        )
        assert "0|alpha | 0 " in text and "2|gamma | 2 " in text
        assert "corral  | " in text and '{"' not in text  # corral.log as one-liners
        before = screen()
        wait_for(lambda: screen() != before, what="new lines while following")
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        end = wait_for(lambda: "EXIT=" in screen(), what="the exit", timeout=DEADLINE) and screen()
        assert "EXIT=130" in end and "Traceback" not in end
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_logs_of_sixty_apps_in_an_80x30_terminal(pm, corral_home, tmp_path):
    """The issue's screen: 60 apps, `corral logs` in an 80-column, 30-row window. Every
    line on screen is a whole `ID|name | line` (no wrapped prefix), the prefixes of
    all ids line up, and a line an app writes later shows at the bottom."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    script = tmp_path / "hello.sh"
    script.write_text('echo "hello from $pm_id"\nread -r line\necho "got $line"\nexec sleep 3600\n')
    pm.start(
        [
            {"name": f"app-{i:02d}", "script": str(script), "exec_interpreter": "sh"}
            for i in range(60)
        ]
    )
    wait_for(lambda: (corral_home / "logs" / "app-59-out.log").stat().st_size > 0, timeout=30)
    session = f"logs60-{os.getpid()}"
    command = f"CORRAL_HOME={corral_home} {sys.executable} -m corral logs --lines 1 --out"
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    subprocess.run(
        ["tmux", "new", "-d", "-s", session, "-x", "80", "-y", "30", command], env=env, check=True
    )

    def lines() -> list[str]:
        shown = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
        ).stdout
        return [line for line in shown.splitlines() if line.strip()]

    try:
        wait_for(lambda: any("hello from 59" in line for line in lines()), timeout=DEADLINE)
        app_lines = [line for line in lines() if "|app-" in line]
        assert len(app_lines) >= 25  # the window is full of them
        for line in app_lines:
            prefix, _, text = line.partition(" | ")
            pm_id, _, name = prefix.partition("|")
            assert name.strip() == f"app-{int(pm_id):02d}" and text == f"hello from {int(pm_id)}"
        assert len({line.index(" | ") for line in app_lines}) == 1  # aligned
        pm.send_line(59, "late")  # type: ignore[attr-defined]
        wait_for(lambda: lines()[-1].endswith("| got late"), timeout=DEADLINE)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
