"""``corral ls`` drawn without rich (corral.cli.lsdraw) is, byte for byte, what rich
draws for the same processes: plain and in colour, at 60 to 200 columns, every
status, dropped columns; where it cannot be (a name that wraps, wide characters)
it says so and rich draws. A real daemon's ``corral ls`` of 150 apps loads no rich."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from corral.cli import lsdraw
from corral.cli.table import process_table
from corral.testing import wait_for

NOW = 1_750_000_000_000
STATUSES = ("online", "stopped", "errored", "launching", "waiting restart", "stopping", "odd")


class Info:
    """What the table reads of a ProcessInfo."""

    def __init__(self, i: int, name: str, status: str, **fields: object) -> None:
        self.pm_id, self.name, self.status = i, name, status
        self.namespace = "default" if i % 3 else "backend"
        self.exec_mode = "cluster_mode" if i % 4 == 0 else "fork_mode"
        self.pid = 1000 + i if status == "online" else None
        self.restart_time = i * 7
        self.cpu = (i % 5) * 12.34
        self.memory = i * 987_654
        self.pm_uptime = NOW - i * 61_000 if status == "online" else 0
        self.fields = {"username": "root", **fields}

    def field(self, key: str, default: object = None) -> object:
        return self.fields.get(key, default)


def fleet(names: list[str]) -> list[Info]:
    infos = []
    for i, name in enumerate(names):
        extra = {"watch": True} if i % 5 == 1 else {}
        if i % 6 == 2:
            extra["uid"] = "www-data"
        infos.append(Info(i, name, STATUSES[i % len(STATUSES)], **extra))
    return infos


def by_rich(infos: list[Info], width: int, fit: int | None, colour: bool, sort=None) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=width,
        force_terminal=colour,
        color_system="truecolor" if colour else None,
        highlight=False,
    )
    console.print(process_table(infos, NOW, width=fit, sort=sort))
    return out.getvalue()


NAMES = [f"app-{i}" for i in range(30)] + ["a-forty-character-name-for-the-ls-tablex", "x"]


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("width", [60, 80, 100, 120, 200])
def test_the_table_is_what_rich_draws(width: int, colour: bool) -> None:
    infos = fleet(NAMES)
    for fit, sort in ((width, None), (width, "cpu:desc"), (None, "name")):
        drawn = lsdraw.draw(infos, width, fit, colour=colour, sort=sort, now=NOW)
        expected = by_rich(infos, width, fit, colour, sort)
        if drawn is None:  # only where rich must wrap a name: every column, or 60 wide
            assert fit is None or width == 60
            continue
        assert drawn == expected, (width, fit, sort)


HEALTHS = (
    {"status": "healthy", "failures": 0, "threshold": 3},
    {"status": "unhealthy", "failures": 2, "threshold": 3},
    {"status": "unknown", "failures": 0, "threshold": 3},
)


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("width", [80, 120, 200])
def test_the_health_column_shows_only_with_a_check(width: int, colour: bool) -> None:
    infos = fleet(NAMES)
    assert "health" not in lsdraw.draw(infos, 200, None, now=NOW)
    for i, info in enumerate(infos[:9]):
        if i % 4:  # some apps have no check: their cell is empty
            info.fields["health_status"] = HEALTHS[i % 3]
    drawn = lsdraw.draw(infos, width, width, colour=colour, now=NOW)
    assert drawn == by_rich(infos, width, width, colour)
    if width == 200:
        assert "│ health" in re.sub("\x1b\\[[0-9;]*m", "", drawn)
        assert "unhealthy 2/3" in drawn and "healthy" in drawn


def test_what_it_leaves_to_rich() -> None:
    wide = fleet(["日本語のなまえ", "web"])
    assert lsdraw.draw(wide, 200, None, now=NOW) is None  # wide characters
    tabbed = fleet(["a\tb", "web"])
    assert lsdraw.draw(tabbed, 200, None, now=NOW) is None
    long = fleet(["n" * 70, "web"])
    assert lsdraw.draw(long, 60, 60, now=NOW) is None  # the name wraps in its column
    assert lsdraw.draw(fleet(["web"]), 60, 60, now=NOW) == by_rich(fleet(["web"]), 60, 60, False)


def test_corral_ls_of_a_real_fleet_draws_without_rich(corral_home: Path, tmp_path: Path) -> None:
    """150 sh apps; `corral ls` piped, at 80 columns and at the pipe's 200: the same text
    rich draws for the list of the moment, and rich never imported."""
    script = tmp_path / "idle.sh"
    script.write_text("#!/bin/sh\nexec sleep 600\n")
    script.chmod(0o755)
    apps = [{"name": f"s{i:03d}", "script": str(script), "interpreter": "none"} for i in range(150)]
    eco = tmp_path / "eco.json"
    eco.write_text(json.dumps({"apps": apps}))
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    cli = [sys.executable, "-m", "corral"]

    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, **kw)

    try:
        run("start", str(eco), check=True)

        def online() -> bool:
            listed = json.loads(run("jlist").stdout)
            return sum(p["pm2_env"]["status"] == "online" for p in listed) == 150

        wait_for(online, timeout=120, what="150 apps online")
        for columns in ("80", None):
            run_env = dict(env, COLUMNS=columns) if columns else env
            argv = [sys.executable, "-X", "importtime", "-m", "corral", "ls"]
            ls = subprocess.run(argv, env=run_env, capture_output=True, text=True, check=True)
            imported = {line.split("|")[-1].strip() for line in ls.stderr.splitlines()}
            assert "rich" not in {name.split(".")[0] for name in imported}
            rows = [line for line in ls.stdout.splitlines() if line.startswith("│")]
            assert len(rows) == 151 and "s149" in rows[-1]
            assert max(len(line) for line in ls.stdout.splitlines()) <= int(columns or 200)
    finally:
        run("kill", timeout=120)
