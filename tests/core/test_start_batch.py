"""A start of many apps: other calls are answered while it runs, and a stop sent
meanwhile waits for the start of its app."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import corral
from corral.testing import apps_of, wait_for

APPS = 300  # about 1 s of spawning here: long enough to ask something in between


def _config(tmp_path: Path, count: int) -> Path:
    script = tmp_path / "sleeper.sh"
    script.write_text("#!/bin/sh\nexec sleep 600\n")
    script.chmod(0o755)
    apps = [
        {"name": f"batch-{i:03d}", "script": str(script), "interpreter": "none"}
        for i in range(count)
    ]
    conf = tmp_path / "batch.json"
    conf.write_text(json.dumps({"apps": apps}))
    return conf


def _start_in_thread(conf: Path) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def start() -> None:
        with corral.connect() as client:
            try:
                result["processes"] = client.start_or_restart(str(conf)).processes
            except Exception as exc:  # told to the test, not lost in the thread
                result["error"] = exc

    thread = threading.Thread(target=start)
    thread.start()
    return thread, result


def _children(home_pid: int) -> int:
    return sum(1 for c in apps_of(home_pid) if c.name() == "sleep")


def test_a_list_is_answered_while_a_start_of_many_apps_runs(pm: Any, tmp_path: Path) -> None:
    conf = _config(tmp_path, APPS)
    daemon = pm.ping()["pid"]
    thread, result = _start_in_thread(conf)
    try:
        wait_for(lambda: _children(daemon) >= 5, timeout=30, what="the first spawns")
        listed = pm.list()
        assert thread.is_alive(), "the start was over before the list: nothing shown"
        assert len([p for p in listed if p.status == "online"]) < APPS  # answered mid-start
    finally:
        thread.join(timeout=120)
    assert "error" not in result, result.get("error")
    assert len(result["processes"]) == APPS
    assert all(p.status == "online" for p in pm.list())


def test_a_stop_sent_during_the_start_of_its_app_stops_it_after_its_launch(
    pm: Any, tmp_path: Path
) -> None:
    conf = _config(tmp_path, APPS)
    daemon = pm.ping()["pid"]
    last = f"batch-{APPS - 1:03d}"
    thread, result = _start_in_thread(conf)
    try:
        wait_for(lambda: _children(daemon) >= 5, timeout=30, what="the first spawns")
        stopped = pm.stop(last)  # registered, not launched yet: waits for its launch
        assert thread.is_alive() or result, "the start ended before the stop was sent"
    finally:
        thread.join(timeout=120)
    assert "error" not in result, result.get("error")
    assert [p.status for p in stopped] == ["stopped"]
    states = {p.name: p.status for p in pm.list()}
    assert states[last] == "stopped"  # not launched again after the stop
    assert sum(1 for s in states.values() if s == "online") == APPS - 1
