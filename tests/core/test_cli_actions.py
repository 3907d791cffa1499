"""Action messages and progress (issue 13, point 6; --json of the actions, point 4).

Each action command says what it did per app in one line (``started web (2
instances, fork)``, ``restarted web (id 0)``, ``scaled web 2 -> 3``), then the
table; ``--json`` prints one document and nothing else; on a terminal a long
action shows a status line (``reload web 2/4 ready``) fed as instances get ready;
``Client(progress=...)`` hands embedders the same events.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PY, python_app, run_cli, wait_for

# says ready (corral.child.ready(), PM2's process.send('ready')) after argv[1] seconds
READY_AFTER = """
import sys, time
import corral.child
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
corral.child.ready()
print("up", flush=True)
time.sleep(600)
"""
SLEEPER = "import time\nprint('up', flush=True)\ntime.sleep(600)\n"
CRASHER = "import sys\nprint('ValueError: no config', file=sys.stderr)\nsys.exit(3)\n"


def first_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The lines a command printed before its table."""
    lines = result.stdout.splitlines()
    cut = next((i for i, text in enumerate(lines) if text.startswith("╭")), len(lines))
    return lines[:cut]


def test_each_command_says_what_it_did_per_app(corral_home: Path, tmp_path: Path) -> None:
    app = python_app(tmp_path, "web.py", SLEEPER)
    other = python_app(tmp_path, "api.py", SLEEPER)
    said = first_lines(run_cli("start", app, "-i", "2"))
    assert said == ["started web (2 instances, fork)"]
    assert first_lines(run_cli("start", other, "--no-wait")) == ["started api (id 2, fork)"]
    assert first_lines(run_cli("restart", "api")) == ["restarted api (id 2)"]
    assert first_lines(run_cli("restart", "web", "api")) == [
        "restarted web (2 instances)",
        "restarted api (id 2)",
    ]
    assert first_lines(run_cli("reload", "web")) == ["reloaded web (2 instances)"]
    assert first_lines(run_cli("graceful-reload", "2")) == ["gracefully reloaded api (id 2)"]
    assert first_lines(run_cli("scale", "web", "3")) == ["scaled web 2 -> 3"]
    assert first_lines(run_cli("scale", "web", "-1")) == ["scaled web 3 -> 2"]
    assert first_lines(run_cli("reset", "all")) == [
        "reset web (2 instances)",
        "reset api (id 2)",
    ]
    stopped = run_cli("stop", "web")  # the table follows the lines, once
    assert first_lines(stopped) == ["stopped web (2 instances)"] and stopped.stdout.count("╭") == 1
    # a start of a known app restarts it (PM2's), and says so
    assert first_lines(run_cli("start", "web")) == ["restarted web (2 instances)"]
    # one target fails: its error on stderr, the others' lines, exit 1
    mixed = run_cli("delete", "nope", "api", check=False)
    assert mixed.returncode == 1
    assert first_lines(mixed) == ["deleted api (id 2)"]
    assert "error: no process matches 'nope'" in mixed.stderr
    gone = run_cli("delete", "web")
    assert gone.stdout.splitlines()[0] == "deleted web (2 instances)"


def test_a_crashed_start_says_started_then_the_verdict(corral_home: Path, tmp_path: Path) -> None:
    app = python_app(tmp_path, "bad.py", CRASHER)
    result = run_cli("start", app, "--max-restarts", "1", check=False)
    assert result.returncode == 1
    assert first_lines(result) == ["started bad (id 0, fork)"]
    assert "error: bad (pm_id 0) exited within min_uptime" in result.stderr
    assert "last error: ValueError: no config" in result.stderr


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (("restart", "web"), "restarted"),
        (("reload", "web"), "reloaded"),
        (("graceful-reload", "web"), "gracefully reloaded"),
        (("reset", "web"), "reset"),
        (("scale", "web", "+1"), "scaled"),
        (("stop", "web"), "stopped"),
        (("delete", "web"), "deleted"),
    ],
)
def test_json_is_one_document_and_nothing_else(
    corral_home: Path, tmp_path: Path, args: tuple[str, ...], action: str
) -> None:
    app = python_app(tmp_path, "web.py", SLEEPER)
    started = run_cli("start", app, "-i", "2", "--json")
    doc = json.loads(started.stdout)  # one document, no table, no plan line
    assert doc["ok"] and doc["action"] == "start" and doc["failures"] == []
    assert doc["apps"] == [
        {
            "name": "web",
            "pm_ids": [0, 1],
            "action": "started",
            "status": "online",
            "statuses": ["online", "online"],
            "instances": 2,
            "exec_mode": "fork_mode",
        }
    ]
    result = run_cli(*args, "--json")
    doc = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1
    (record,) = doc["apps"]
    assert (record["name"], record["action"], doc["errors"]) == ("web", action, [])
    if action == "scaled":
        assert (record["before"], record["pm_ids"]) == (2, [0, 1, 2])
    else:
        assert record["pm_ids"] == [0, 1]


def test_json_of_a_failed_start_holds_the_verdict(corral_home: Path, tmp_path: Path) -> None:
    app = python_app(tmp_path, "bad.py", CRASHER)
    result = run_cli("start", app, "--max-restarts", "1", "--json", check=False)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["down"] == ["bad"]
    (failure,) = doc["failures"]
    assert failure["name"] == "bad" and failure["error_line"] == "ValueError: no config"
    assert "exited within" not in result.stderr  # said once, in the document
    missing = run_cli("stop", "nope", "--json", check=False)
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["errors"][0].startswith("no process matches 'nope'")


def test_a_config_file_start_keeps_its_plan_lines_and_json(
    corral_home: Path, tmp_path: Path
) -> None:
    python_app(tmp_path, "web.py", SLEEPER)
    config = tmp_path / "eco.json"
    config.write_text(json.dumps({"apps": [{"name": "web", "script": "web.py"}]}))
    result = run_cli("start", str(config), cwd=tmp_path)
    assert first_lines(result) == ["web: started (1 instance)"]
    doc = json.loads(run_cli("startOrRestart", str(config), "--json", cwd=tmp_path).stdout)
    assert [(a["name"], a["action"], a["pm_ids"]) for a in doc["apps"]] == [
        ("web", "unchanged", [0])
    ]


def test_progress_events_come_per_instance_in_order(pm, tmp_path: Path) -> None:
    app = python_app(tmp_path, "slow.py", READY_AFTER)
    events: list[dict] = []
    infos = pm.start(
        app, {"name": "web", "instances": 3, "wait_ready": True, "args": ["0.4"]},
        progress=events.append,
    )  # fmt: skip
    assert infos.actions[0]["action"] == "started"
    kinds = [e["event"] for e in events]
    assert kinds == ["begin", "ready", "ready", "ready", "end"], events
    assert events[0]["label"] == "starting web" and events[0]["total"] == 3
    assert [e["done"] for e in events[1:4]] == [1, 2, 3]
    events.clear()
    pm.reload("web", progress=events.append)  # one at a time: 0, 1, 2
    ready = [e for e in events if e["event"] == "ready"]
    assert [e["pm_id"] for e in ready] == [0, 1, 2], events
    assert [e["done"] for e in ready] == [1, 2, 3] and {e["total"] for e in ready} == {3}
    assert events[0] == {"event": "begin", "action": "reload", "label": "reload web", "total": 3}
    assert events[-1] == {"event": "end", "action": "reload", "done": 3, "total": 3}
    events.clear()
    pm.scale("web", "+2", progress=events.append)
    assert sorted(e["pm_id"] for e in events if e["event"] == "ready") == [3, 4]  # together
    events.clear()
    pm.restart(["web"], progress=events.append)
    assert sorted(e["pm_id"] for e in events if e["event"] == "ready") == [0, 1, 2, 3, 4]


def tmux_screen(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_reload_on_a_terminal_shows_its_progress(corral_home: Path, tmp_path: Path) -> None:
    app = python_app(tmp_path, "slow.py", READY_AFTER)
    run_cli("start", app, "--name", "web", "-i", "4", "--wait-ready", "--", "1.5")
    session = f"progress-{os.getpid()}"
    command = f"{PY} -m corral reload web; echo EXIT=$?; sleep 600"
    env = f"CORRAL_HOME={corral_home} CORRAL_PLUGINS="
    subprocess.run(
        ["tmux", "new", "-d", "-s", session, "-x", "80", "-y", "30", f"env {env} {command}"],
        check=True,
    )
    try:
        seen: list[str] = []

        def shows(text: str) -> bool:
            screen = tmux_screen(session)
            seen.append(screen)
            return text in screen

        wait_for(lambda: shows("reload web 2/4 ready"), timeout=15)
        assert "reloaded web" not in seen[-1]  # shown while it runs, not at its end
        wait_for(lambda: shows("EXIT=0"), timeout=20)
        screen = seen[-1]
        assert "reloaded web (4 instances)" in screen and "ready" not in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_without_a_terminal_no_status_line(corral_home: Path, tmp_path: Path) -> None:
    app = python_app(tmp_path, "slow.py", READY_AFTER)
    run_cli("start", app, "--name", "web", "-i", "2", "--wait-ready", "--", "0.3")
    result = subprocess.run(
        [sys.executable, "-m", "corral", "reload", "web"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "ready" not in result.stdout and "\x1b" not in result.stdout
    assert result.stdout.splitlines()[0] == "reloaded web (2 instances)"


def test_resurrect_says_what_it_brought_back_and_what_it_reused(
    corral_home: Path, tmp_path: Path
) -> None:
    run_cli("start", python_app(tmp_path, "web.py", SLEEPER), "--no-wait")
    run_cli("start", python_app(tmp_path, "api.py", SLEEPER), "--no-wait")
    run_cli("dump")
    run_cli("delete", "api")
    said = first_lines(run_cli("resurrect"))
    assert said == ["resurrected api (id 1)", "reused web: already online"]
