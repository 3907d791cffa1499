"""``corral monit`` as a person sees it: a real daemon, monit in an 80x30 tmux window,
keys sent with ``send-keys`` and the screen read with ``capture-pane``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corral.cli_monit import HELP
from tests.conftest import run_cli as corral
from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
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


def test_monit_log_pane_merges_out_and_err_in_the_order_written(screen, tmp_path):
    """Dated lines already in the files (log_date_format), and undated lines that
    arrive while the app is selected, both show as the app wrote them."""
    talk = "echo out1; sleep 0.3; echo err1 >&2; sleep 0.3; echo out2; sleep 0.3; echo err2 >&2"
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
    wait_for(lambda: "err2" in corral("logs", "dated", "--err", "--raw", "--lines", "5").stdout)
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
