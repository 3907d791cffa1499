"""``corral monit`` as a person sees it: a real daemon, monit in an 80x30 tmux window,
keys sent with ``send-keys`` and the screen read with ``capture-pane``."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from corral.cli.monit import (
    BACKSPACE,
    END,
    ENTER,
    ESC,
    HELP,
    HOME,
    PAGE_DOWN,
    PAGE_UP,
    UP,
    MonitScreen,
    split_keys,
)
from corral.cli.monit_log import MergedLog, sortable_width
from tests.conftest import run_cli as corral
from tests.conftest import wait_for

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
DEADLINE = 20.0
ROWS, COLUMNS = 30, 80


class Screen:
    """A shell in a private tmux server (its own socket), 80x30, no status bar."""

    def __init__(self, home: Path, tag: str) -> None:
        self.socket = f"corral-monit-{tag}-{os.getpid()}"
        self.home = home
        env = f"env CORRAL_HOME={home} CORRAL_PLUGINS= PS1='$ ' sh"
        self.tmux("new-session", "-d", "-s", "monit", "-x", str(COLUMNS), "-y", str(ROWS), env)
        self.tmux("set-option", "-t", "monit", "status", "off")
        self.path = self.tmux("display-message", "-p", "#{socket_path}").strip()

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def lines(self) -> list[str]:
        return self.tmux("capture-pane", "-p", "-t", "monit").split("\n")[:ROWS]

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", "monit", *(["-l"] if literal else []), *keys)

    def type(self, line: str) -> None:
        self.keys(line, literal=True)
        self.keys("Enter")

    def wait(self, check: Callable[[list[str]], object], what: str) -> list[str]:
        """The screen once ``check`` holds on it (polled until :data:`DEADLINE`)."""
        seen: list[list[str]] = []

        def ok() -> bool:
            seen[:] = [self.lines()]
            return bool(check(seen[0]))

        try:
            wait_for(ok, timeout=DEADLINE, what=what)
        except BaseException:
            print("\n".join(seen[0]) if seen else "(no screen)")
            raise
        return seen[0]

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)
        Path(self.path).unlink(missing_ok=True)  # tmux 3.3 leaves its socket behind


@pytest.fixture
def screen(corral_home: Path, pm: object) -> Iterator[Screen]:
    shown = Screen(corral_home, "t")
    try:
        yield shown
    finally:
        shown.kill()


def selected(lines: list[str]) -> str | None:
    """The name on the row marked ``>`` (the reversed row)."""
    row = next((line for line in lines if line.startswith(">")), None)
    return row.split()[2] if row else None


def pane(lines: list[str]) -> list[str]:
    """The lines inside the log pane's border."""
    top = next((n for n, line in enumerate(lines) if line.startswith("╭")), len(lines))
    bottom = next((n for n, line in enumerate(lines) if line.startswith("╰")), 0)
    return [line.strip("│ ") for line in lines[top + 1 : bottom]]


def whole_frame(lines: list[str]) -> bool:
    """The status line on the first row, the pane's both borders and the help."""
    return (
        lines[0].startswith("corral monit")
        and any(line.startswith("╭") for line in lines)
        and any(line.startswith("╰") for line in lines)
        and lines[-1].strip() == HELP
    )


def start(tmp_path: Path, apps: list[dict]) -> None:
    config = tmp_path / "apps.json"
    config.write_text(json.dumps({"apps": apps}))
    corral("start", str(config))


def sleeper(name: str) -> dict:
    return {"name": name, "script": "/bin/sh", "args": ["-c", "exec sleep 3600"]}


@needs_tmux
def test_monit_scrolls_pages_filters_and_restores_the_terminal(screen, tmp_path):
    start(tmp_path, [sleeper(f"app{n:02d}") for n in range(60)])
    screen.type(f"stty -g > {tmp_path}/before; {sys.executable} -m corral monit")
    first = screen.wait(lambda s: whole_frame(s) and "60" in s[0], "monit's first frame")
    assert selected(first) == "app00" and "app00 (id 0) logs" in "".join(first)
    assert HELP in first[-1] and len(pane(first)) >= 5

    screen.keys("j" * 40, literal=True)  # one burst, as key repeat sends them
    moved = screen.wait(lambda s: selected(s) == "app40", "the selection 40 rows down")
    assert whole_frame(moved) and "app40 (id 40) logs" in "".join(moved)

    screen.keys("NPage")
    paged = screen.wait(lambda s: selected(s) not in (None, "app40"), "a page down")
    page = sum(1 for line in paged if line[:1] in (">", " ") and "online" in line)
    assert selected(paged) == f"app{min(40 + page, 59):02d}" and whole_frame(paged)
    screen.keys("End")
    screen.wait(lambda s: selected(s) == "app59", "the last app selected")
    screen.keys("g", literal=True)
    screen.wait(lambda s: selected(s) == "app00", "the first app selected")

    screen.keys("/app3", literal=True)
    narrowed = screen.wait(
        lambda s: "filter: app3" in s[0] and sum("online" in line for line in s) == 10,
        "the list narrowed to app30-app39",
    )
    names = [line.split()[1 + line.startswith(">")] for line in narrowed if "online" in line]
    assert names == [f"app3{n}" for n in range(10)] and selected(narrowed) == "app30"
    screen.keys("Enter")
    screen.keys("j", literal=True)
    screen.wait(lambda s: selected(s) == "app31", "j moves within the filter")
    screen.keys("Escape")
    screen.wait(lambda s: "filter" not in s[0] and "of 60" in s[0], "the filter cleared")

    screen.keys("q", literal=True)
    screen.type(f"stty -g > {tmp_path}/after")
    wait_for(lambda: (tmp_path / "after").exists() and (tmp_path / "after").read_text())
    assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()
    back = screen.wait(lambda s: any("stty -g >" in line for line in s), "the shell back")
    assert not any(line.startswith("corral monit") for line in back)  # the screen restored


def _interleaved(lines: list[str]) -> bool:
    wanted = ["out | ", "err | ", "out | ", "err | "]
    found = [line for line in lines if line.endswith(("out1", "err1", "out2", "err2"))]
    return len(found) == 4 and all(
        line.startswith(prefix) and line.endswith(word)
        for line, prefix, word in zip(found, wanted, ("out1", "err1", "out2", "err2"), strict=True)
    )


@needs_tmux
def test_monit_log_pane_merges_out_and_err_in_the_order_written(screen, tmp_path):
    """Dated lines already in the files (log_date_format), and undated lines that
    arrive while the app is selected, both show as the app wrote them."""
    talk = "echo out1; sleep 0.5; echo err1 >&2; sleep 0.5; echo out2; sleep 0.5; echo err2 >&2"
    trigger = tmp_path / "go"
    start(
        tmp_path,
        [
            {
                "name": "dated",
                "script": "/bin/sh",
                "args": ["-c", f"{talk}; exec sleep 3600"],
                "log_date_format": "YYYY-MM-DD HH:mm:ss.SSS",
            },
            {
                "name": "live",
                "script": "/bin/sh",
                "args": [
                    "-c",
                    f"until [ -e {trigger} ]; do sleep 0.05; done; {talk}; exec sleep 3600",
                ],
            },
        ],
    )
    wait_for(
        lambda: (
            "err2" in corral("logs", "dated", "--err", "--raw", "--lines", "5", "--nostream").stdout
        )
    )
    screen.type(f"{sys.executable} -m corral monit")
    shown = screen.wait(lambda s: _interleaved(pane(s)), "dated out and err interleaved")
    assert selected(shown) == "dated"

    screen.keys("/live", literal=True)
    screen.keys("Enter")
    screen.wait(lambda s: selected(s) == "live" and "(no output yet)" in "".join(s), "live")
    trigger.touch()
    screen.wait(lambda s: _interleaved(pane(s)), "live out and err interleaved as they arrive")
    screen.keys("q", literal=True)
    screen.wait(lambda s: not any(line.startswith("corral monit") for line in s), "monit gone")


# -- the pieces, without a daemon ----------------------------------------------------


class Info:
    """What MergedLog reads of a ProcessInfo."""

    def __init__(self, tmp: Path, **options: object) -> None:
        self.pm_id, self.name = 0, "web"
        self.out_log, self.err_log = str(tmp / "out.log"), str(tmp / "err.log")
        self.options = options


def test_dated_lines_merge_by_date_and_a_piece_without_date_keeps_its_place(tmp_path):
    info = Info(tmp_path, log_date_format="YYYY-MM-DD HH:mm:ss.SSS")
    Path(info.out_log).write_text(
        "2026-01-01 10:00:00.100: out1\n2026-01-01 10:00:00.300: out2\ncontinued\n"
    )
    Path(info.err_log).write_text("2026-01-01 10:00:00.200: err1\n2026-01-01 10:00:00.400: err2\n")
    log = MergedLog(info)
    try:
        assert [(s, t[25:] or t) for s, t, _ in log.lines] == [
            ("out", "out1"), ("err", "err1"), ("out", "out2"), ("out", "continued"),
            ("err", "err2"),
        ]  # fmt: skip
    finally:
        log.close()


def test_undated_lines_arrive_in_order_and_the_backlog_comes_file_by_file(tmp_path):
    info = Info(tmp_path)
    out, err = Path(info.out_log), Path(info.err_log)
    err.write_text("old err\n")
    out.write_text("old out\n")
    os.utime(err, (1, 1))  # the err file changed first: its block comes first
    log = MergedLog(info)
    try:
        assert [t for _, t, _ in log.lines] == ["old err", "old out"]
        for stream, path in (("out", out), ("err", err), ("out", out), ("err", err)):
            with path.open("a") as file:
                file.write(f"new {stream}\n")
            assert log.poll()
        with err.open("a") as file:
            file.write("err first\n")
        with out.open("a") as file:
            file.write("out second\n")
        os.utime(err, ns=(1, os.stat(out).st_mtime_ns - 1000))  # err changed first
        assert log.poll() and [t for _, t, _ in log.lines][-2:] == ["err first", "out second"]
        assert not log.poll()
        assert [f"{s} {t}" for s, t, _ in log.lines][2:6] == [
            "out new out", "err new err", "out new out", "err new err"
        ]  # fmt: skip
        out.write_text("")  # flushed: read again from the start
        with out.open("a") as file:
            file.write("after flush\n")
        assert log.poll() and log.lines[-1][1] == "after flush"
        out.rename(tmp_path / "out.log.1")  # rotated: the new file from its start
        out.write_text("rotated\n")
        assert log.poll() and log.lines[-1][1] == "rotated"
    finally:
        log.close()


def test_dates_are_trusted_only_when_they_sort_as_time():
    assert sortable_width("YYYY-MM-DD HH:mm:ss.SSS") == 23
    assert sortable_width("YYYY-MM-DDTHH:mm:ss") == 19  # the format of `time: true`
    assert sortable_width("DD/MM/YYYY HH:mm") is None
    assert sortable_width("D MMM") is None


def test_keys_are_read_all_at_once_and_named():
    assert split_keys("jjj\x1b[A\x1b[6~\x1b[5~\x1b[H\x1b[F/x\x7f\r\x1b") == [
        "j", "j", "j", UP, PAGE_DOWN, PAGE_UP, HOME, END, "/", "x", BACKSPACE, ENTER, ESC,
    ]  # fmt: skip


def test_the_frame_fits_any_terminal_and_keeps_the_selection_on_screen():
    class Proc:
        def __init__(self, n: int) -> None:
            self.pm_id, self.name, self.status = n, f"app{n:03d}", "online"
            self.cpu, self.memory, self.restart_time, self.pm_uptime = 0.0, 0, 0, 0
            self.out_log = self.err_log = None
            self.options = {}

    console = Console(width=60, height=20, file=io.StringIO(), force_terminal=False)
    screen = MonitScreen()
    screen.set_infos([Proc(n) for n in range(200)])
    for keys in ("j" * 150, "\x1b[5~", "G", "/app19\r", "k"):
        for key in split_keys(keys):
            screen.press(key)
        console.file = io.StringIO()
        console.print(screen.view(60, 20))
        lines = console.file.getvalue().split("\n")[:-1]
        assert len(lines) == 20 and max(len(line) for line in lines) <= 60
        chosen = next(line for line in lines if line.startswith(">"))
        assert f"app{screen.selected:03d}" in chosen and lines[-1].startswith("↑↓/jk")
    assert screen.selected == 198 and "filter: app19" in lines[0]


def test_json_log_lines_merge_by_their_timestamp_and_show_their_message(tmp_path):
    info = Info(tmp_path, log_type="json")
    record = '{{"message":"{}","timestamp":"2026-01-01T10:00:00.{}Z","type":"{}"}}\n'
    Path(info.out_log).write_text(record.format("o1", 100, "out") + record.format("o2", 300, "out"))
    Path(info.err_log).write_text(record.format("e1", 200, "err") + record.format("e2", 400, "err"))
    log = MergedLog(info)
    try:
        assert [f"{s} {t}" for s, t, _ in log.lines] == ["out o1", "err e1", "out o2", "err e2"]
    finally:
        log.close()
