"""``corral describe`` shows everything an app was started with, its last exit (code
or signal, and when), its counters, log paths and the plugins acting on it, as a
panel and as ``--json``; ``plugins --json`` and ``ping --json``."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from corral.client.info import ProcessInfo
from corral.testing import wait_for
from tests.conftest import APPS
from tests.conftest import run_cli as corral

SECRET = "hunter2-very-secret"


def jlist() -> list[dict]:
    return json.loads(corral("jlist").stdout)


def entry(name: str) -> dict:
    return next(p for p in jlist() if p["name"] == name)


@pytest.fixture
def plugged(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CORRAL_PLUGINS", "watch,cron,memory")
    return corral_home


def test_describe_shows_settings_last_signal_and_plugins(plugged, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    corral(
        "start", str(APPS / "sleeper.py"), "--name", "web", "--no-wait",
        "--max-restarts", "5", "--kill-timeout", "3000", "--restart-delay", "100",
        "--min-uptime", "200", "--env", f"API_TOKEN={SECRET}", "--watch", str(src),
        "--opt", "cron_restart=0 3 * * *", "--opt", "max_memory_restart=300M",
        "--opt", "ignore_watch=[\"*.log\"]",
    )  # fmt: skip
    wait_for(lambda: entry("web")["pid"], what="web running")
    # up longer than min_uptime: its kill is a stable restart, even on a loaded machine
    up = entry("web")["pm2_env"]["pm_uptime"]
    wait_for(lambda: time.time() * 1000 - up > 400, what="web up past min_uptime")
    first = entry("web")["pid"]
    before = int(time.time() * 1000)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: entry("web")["pid"] not in (0, first), what="web restarted")

    panel = corral("describe", "web").stdout
    lines = {" ".join(line.strip("│ ").split()) for line in panel.splitlines()}
    for shown in (
        "max_restarts 5",
        "kill_timeout 3000",
        "restart_delay 100",
        "cron_restart 0 3 * * *",
        "max_memory_restart 314572800",
        "restarts 1",
        "unstable restarts 0",
    ):
        assert shown in lines, panel
    assert any(line.startswith("last exit killed by SIGKILL, ") for line in lines), panel
    assert any(line.startswith(f"watch on, paths {src}") for line in lines), panel
    assert any(line.startswith("cron 0 3 * * *, next ") for line in lines), panel
    assert any(line.startswith("memory limit 300.0mb") for line in lines), panel
    assert "API_TOKEN ****" in lines and SECRET not in panel
    assert entry("web")["pm2_env"]["pm_out_log_path"] in panel

    text = corral("describe", "web", "--json").stdout
    assert text.endswith("\n") and text.count("\n") == 1 and SECRET not in text
    (document,) = json.loads(text)
    listed = entry("web")
    assert set(listed) <= set(document) and set(listed["pm2_env"]) <= set(document["pm2_env"])
    last = document["pm2_env"]["last_exit"]
    assert last["signal"] == "SIGKILL" and last["code"] is None
    assert before <= last["at"] <= int(time.time() * 1000)
    assert document["pm2_env"]["env"]["API_TOKEN"] == "****"
    acting = document["plugins"]
    assert acting["watch"]["enabled"] is True and acting["watch"]["ignore"] == ["*.log"]
    assert acting["cron"]["cron_restart"] == "0 3 * * *" and acting["cron"]["next"] > before
    assert acting["memory"]["max_memory_restart"] == 314572800
    shown = json.loads(corral("describe", "web", "--json", "--show-secrets").stdout)
    assert shown[0]["pm2_env"]["env"]["API_TOKEN"] == SECRET


def test_describe_shows_the_last_exit_code_and_one_document_per_instance(corral_home, tmp_path):
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.exit(3)\n")
    corral("start", str(crash), "--name", "crasher", "--max-restarts", "1", check=False)
    wait_for(lambda: entry("crasher")["pm2_env"]["status"] == "errored", what="errored")
    panel = corral("describe", "crasher").stdout
    assert "exit code 3, " in panel and "ago)" in panel
    (document,) = json.loads(corral("describe", "crasher", "--json").stdout)
    assert document["pm2_env"]["last_exit"]["code"] == 3
    assert document["pm2_env"]["last_exit"]["signal"] is None
    assert document["plugins"] == {}  # no plugin loaded, none acting

    corral("start", str(APPS / "sleeper.py"), "--name", "two", "-i", "2", "--no-wait")
    documents = json.loads(corral("describe", "two", "--json").stdout)
    assert [d["pm_id"] for d in documents] == sorted(
        p["pm_id"] for p in jlist() if p["name"] == "two"
    )
    assert len(documents) == 2


def test_plugins_and_ping_json(plugged):
    pong = json.loads(corral("ping", "--json").stdout)
    assert pong["pid"] > 0 and pong["home"] == str(plugged)
    loaded = json.loads(corral("plugins", "--json").stdout)
    assert {"watch", "cron", "memory"} <= {p["name"] for p in loaded}
    assert all("errors" in p for p in loaded)


def test_settings_rows_show_what_differs_from_the_default():
    from corral.cli.describe import declared_defaults, settings_rows

    info = ProcessInfo(
        {"pid": 0, "name": "web", "pm_id": 0, "monit": {"memory": 0, "cpu": 0.0},
         "pm2_env": {"status": "stopped", "name": "web", "script": "a.py", "max_restarts": 16,
                     "kill_timeout": 5000, "autorestart": False, "stop_exit_codes": [],
                     "listen": None, "uid": "www", "db_password": "pw", "env": {}}}
    )  # fmt: skip
    rows = dict(settings_rows(info, declared_defaults()))
    assert rows == {"kill_timeout": "5000", "autorestart": "false", "uid": "www",
                    "db_password": "****"}  # fmt: skip
