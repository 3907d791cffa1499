"""``corral ls`` as a person sees it: real apps in several statuses, the table at
60, 80 and 120 columns in a tmux window and through COLUMNS with no tty; --sort,
-m and --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from corral.testing import wait_for
from tests.conftest import APPS
from tests.conftest import run_cli as corral

LONG = "a-forty-character-name-for-the-ls-tablex"  # 40 characters
assert len(LONG) == 40
SIXTY = "".join(chr(ord("a") + i % 26) for i in range(56)) + "-end"  # 60, wraps at 60 cols
assert len(SIXTY) == 60


def jlist() -> list[dict]:
    return json.loads(corral("jlist").stdout)


def statuses() -> dict[str, str]:
    return {p["name"]: p["pm2_env"]["status"] for p in jlist()}


@pytest.fixture
def apps(corral_home: Path, tmp_path: Path) -> dict[str, str]:
    """online (fork and a 2-instance node cluster), stopped, errored, a 40-char name."""
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.exit(3)\n")
    sleeper = str(APPS / "sleeper.py")
    corral("start", sleeper, "--name", "web", "--no-wait")
    corral("start", sleeper, "--name", LONG, "--no-wait")
    corral("start", sleeper, "--name", "halted", "--no-wait")
    corral("stop", "halted")
    corral("start", str(crash), "--name", "crasher", "--max-restarts", "2", check=False)
    if shutil.which("node"):
        corral("start", str(APPS / "server.js"), "--name", "clu", "-i", "2", "--no-wait")
    want = {"web": "online", LONG: "online", "halted": "stopped", "crasher": "errored"}
    if shutil.which("node"):
        want["clu"] = "online"
    wait_for(lambda: all(statuses().get(k) == v for k, v in want.items()), what=str(want))
    return want


def table_rows(screen: str) -> list[list[str]]:
    """The cells of each row of a rounded rich table (header included)."""
    rows = []
    for line in screen.splitlines():
        if line.startswith("│"):
            rows.append([cell.strip() for cell in line.strip().strip("│").split("│")])
    return rows


def check_whole(screen: str, expected: dict[str, str], columns: int) -> list[str]:
    """id, name and status appear whole on each app's line; returns the header."""
    lines = screen.splitlines()
    assert all(len(line) <= columns for line in lines), screen
    assert "…" not in screen, screen
    rows = table_rows(screen)
    header = rows[0]
    assert header[:2] == ["id", "name"] and "status" in header, screen
    by_name = {row[1]: row for row in rows[1:]}
    ids = {p["name"]: p["pm_id"] for p in jlist()}
    for name, status in expected.items():
        row = by_name.get(name)
        assert row is not None, f"{name} not whole on a line at {columns} columns:\n{screen}"
        assert row[header.index("status")] == status, screen
        assert row[0] in {str(i) for n, i in ids.items() if n == name}, screen
    return header


def tmux_screen(columns: int, command: str) -> str:
    """What a ``columns``-wide tmux window shows after ``command`` has run."""
    session = f"lsjson-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    done = f"done-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", str(columns), "-y", "40", "bash"],
        check=True,
        env={**os.environ, "COLUMNS": "", "PS1": "$ "},
    )
    try:
        env = f"CORRAL_HOME={os.environ['CORRAL_HOME']} CORRAL_PLUGINS=''"
        line = f"clear; unset COLUMNS; {env} {sys.executable} -m corral {command}; echo {done}"
        subprocess.run(["tmux", "send-keys", "-t", session, line, "Enter"], check=True)

        def screen() -> str:
            shown = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
            ).stdout
            return shown if f"\n{done}" in shown else ""

        return wait_for(screen, timeout=30, what=f"ls in a {columns}-column tmux window")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_ls_keeps_id_name_status_whole_in_tmux_and_without_a_tty(apps):
    for columns in (60, 80, 120):
        header = check_whole(tmux_screen(columns, "ls"), apps, columns)
        if columns == 120:
            assert {"mode", "pid", "uptime", "user"} <= set(header)
        if columns == 60:
            assert "namespace" not in header and "watching" not in header
    for columns in (60, 80, 120, 200):
        result = subprocess.run(
            [sys.executable, "-m", "corral", "ls"],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": str(columns)},
            timeout=60,
        )
        assert "\x1b[" not in result.stdout  # no colours in a pipe
        header = check_whole(result.stdout, apps, columns)
        if columns == 200:
            assert "watching" in header and "user" in header


def test_a_sixty_character_name_wraps_in_its_column(corral_home):
    corral("start", str(APPS / "sleeper.py"), "--name", SIXTY, "--no-wait")
    result = subprocess.run(
        [sys.executable, "-m", "corral", "ls"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "60"},
        timeout=60,
    )
    assert "…" not in result.stdout and all(len(x) <= 60 for x in result.stdout.splitlines())
    rows = table_rows(result.stdout)[1:]
    assert "".join(row[1] for row in rows) == SIXTY  # folded over lines, every character kept
    assert rows[0][0] == "0" and rows[0][-1] in ("online", "launching")


def test_ls_sort_mini_and_json(apps):
    names = [p["name"] for p in json.loads(corral("ls", "--json").stdout)]
    assert names == [p["name"] for p in sorted(jlist(), key=lambda p: p["pm_id"])]
    by_name = json.loads(corral("ls", "--sort", "name", "--json").stdout)
    assert [p["name"] for p in by_name] == sorted(names)
    desc = json.loads(corral("ls", "--sort", "name:desc", "--json").stdout)
    assert [p["name"] for p in desc] == sorted(names, reverse=True)
    restarts = json.loads(corral("ls", "--sort", "restarts:desc", "--json").stdout)
    counts = [p["pm2_env"]["restart_time"] for p in restarts]
    assert counts == sorted(counts, reverse=True) and counts[0] >= 1
    table = corral("ls", "--sort", "name").stdout
    order = [row[1] for row in table_rows(table)[1:]]
    assert order == sorted(names)
    mini = corral("ls", "-m").stdout
    assert mini.count("+--- ") == len(names) and "+--- web\n" in mini
    assert "status : errored" in mini and "watching : no" in mini
    assert corral("ls", "--mini-list").stdout.count("+--- ") == len(names)


def test_ls_refuses_a_bad_sort(corral_home):
    result = corral("ls", "--sort", "colour", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: --sort takes FIELD[:asc|:desc]")
    assert not (corral_home / "corral.pid").exists()  # refused before a daemon is started


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd"), reason="needs root")
def test_the_user_column_shows_the_user_an_app_runs_as(corral_home):
    user = "lsj" + uuid.uuid4().hex[:8]
    subprocess.run(["useradd", "--no-create-home", user], check=True)
    try:
        corral("start", "sleep 600", "--name", "as-user", "--opt", f"uid={user}", "--no-wait")
        corral("start", "sleep 600", "--name", "as-root", "--no-wait")
        rows = table_rows(corral("ls").stdout)
        users = {row[1]: row[rows[0].index("user")] for row in rows[1:]}
        assert users == {"as-user": user, "as-root": "root"}
        assert f"user : {user}" in corral("ls", "-m").stdout
    finally:
        corral("delete", "all", check=False)
        subprocess.run(["userdel", user], check=False, stderr=subprocess.DEVNULL)
