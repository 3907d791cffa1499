"""A start of many apps hands the loop to other calls while it registers them too.

Registering 1,000 apps (their log files opened, their slots made) held the loop for a
second before the first launch; now other calls are answered between two of them, and
the names the start is registering are not made twice by another start meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import corral
from corral.errors import StateError
from tests.core.test_start_batch import _config, _start_in_thread

APPS = 300


def test_a_list_sent_while_a_start_registers_its_apps_sees_part_of_them(
    pm: Any, tmp_path: Path
) -> None:
    conf = _config(tmp_path, APPS)
    other = tmp_path / "other.sh"
    other.write_text("#!/bin/sh\nexec sleep 600\n")
    other.chmod(0o755)
    last = f"batch-{APPS - 1:03d}"
    seen: list[tuple[int, int]] = []  # (registered, online) per list answered
    refused: list[str] = []
    thread, result = _start_in_thread(conf)
    try:
        with corral.connect() as client:
            while thread.is_alive():
                listed = client.list()
                online = sum(1 for p in listed if p.status == "online")
                seen.append((len(listed), online))
                if 0 < len(listed) < APPS // 2 and not online and not refused:
                    # registering: the batch's last name is taken, not made twice
                    with pytest.raises(StateError) as caught:
                        client.start(str(other), {"name": last, "interpreter": "none"})
                    refused.append(str(caught.value))
    finally:
        thread.join(timeout=120)
    assert "error" not in result, result.get("error")
    partial = [(n, up) for n, up in seen if 0 < n < APPS and up == 0]
    assert partial, f"no list answered while the apps were being registered: {seen[:20]}"
    assert refused and "another start" in refused[0], refused
    named = [p for p in pm.list() if p.name == last]
    assert len(named) == 1 and named[0].status == "online"
    assert len(pm.list()) == APPS


def test_a_stop_sent_while_its_app_is_registered_waits_for_its_launch(
    pm: Any, tmp_path: Path
) -> None:
    """Each app is locked from its registration: a stop of a registered app that is not
    launched yet waits for the launch, then stops it (not launched after the stop)."""
    conf = _config(tmp_path, APPS)
    first = "batch-000"
    stopped: list[Any] = []
    thread, result = _start_in_thread(conf)
    try:
        with corral.connect() as client:
            while thread.is_alive() and not stopped:
                listed = client.list()
                if listed and not any(p.status == "online" for p in listed):
                    stopped.extend(client.stop(first))
    finally:
        thread.join(timeout=120)
    assert "error" not in result, result.get("error")
    assert stopped, "no list answered while the apps were being registered"
    assert [p.status for p in stopped] == ["stopped"]
    states = {p.name: p.status for p in pm.list()}
    assert states[first] == "stopped"  # not launched again after the stop
    assert sum(1 for s in states.values() if s == "online") == APPS - 1
