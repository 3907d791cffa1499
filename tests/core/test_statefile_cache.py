"""The state file keeps each app's entry encoded until it changes, and a write after a
change carries it.

A write of 1,000 apps encoded 3 MB of JSON each time on the event loop; now only the
entries whose fields changed are encoded again (corral.daemon.statefile.EntryCache).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.daemon.statefile import EntryCache, entry_of
from corral.supervisor import lifecycle
from corral.supervisor.process import Child, ManagedProcess
from corral.testing import wait_for
from tests.core.test_daemon import read_state

State = lifecycle.ProcessState


def _proc(pm_id: int) -> ManagedProcess:
    return ManagedProcess(
        pm_id=pm_id,
        name=f"app-{pm_id}",
        options={"name": f"app-{pm_id}", "max_restarts": 16},
        env={"A": "1"},
        script="/bin/sleep",
        interpreter="none",
    )


class Writer:
    """What StateFile.write does with an EntryCache: the entries, decoded back."""

    def __init__(self, procs: list[ManagedProcess]) -> None:
        self.procs = procs
        self.cache = EntryCache()
        self.pending: set[int] = set()

    def status(self, proc: ManagedProcess) -> str:
        if proc.pm_id in self.pending and proc.state == State.STOPPED:
            return State.LAUNCHING.value
        return proc.state.value

    def write(self) -> dict[int, dict[str, Any]]:
        parts = self.cache.encode(self.procs, self.status, lambda p: None, entry_of)
        return {e["pm_id"]: e for e in (json.loads(b) for b in parts)}


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    child = subprocess.Popen(["sleep", "60"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_only_the_entries_that_changed_are_encoded_again(sleeper: subprocess.Popen) -> None:
    procs = [_proc(i) for i in range(5)]
    writer = Writer(procs)
    first = writer.write()
    assert writer.cache.encoded == 5
    assert writer.write() == first and writer.cache.encoded == 5  # nothing changed

    changes = {
        "state": lambda p: setattr(p, "state", State.ONLINE),
        "pid": lambda p: setattr(p, "child", _child(sleeper)),
        "env": lambda p: setattr(p, "env", {**p.env, "B": "2"}),
        "options": lambda p: setattr(p, "options", {**p.options, "max_restarts": 3}),
        "restart counts": lambda p: setattr(
            p, "history", lifecycle.on_spawn(p.history, 5, is_restart=True)
        ),
    }
    for (what, change), proc in zip(changes.items(), procs, strict=True):
        before = writer.cache.encoded
        change(proc)
        entries = writer.write()
        assert writer.cache.encoded == before + 1, f"a change of {what}: not encoded again"
        fresh = entry_of(proc, entries[proc.pm_id]["status"], None)
        assert entries[proc.pm_id] == json.loads(json.dumps(fresh, default=str)), what
    entries = writer.write()
    assert entries[0]["status"] == "online"
    assert entries[1]["pid"] == sleeper.pid
    assert entries[2]["env"] == {"A": "1", "B": "2"}
    assert entries[3]["options"]["max_restarts"] == 3
    assert entries[4]["history"]["restart_time"] == 1


def test_a_batch_s_unlaunched_app_is_saved_launching_then_as_it_is() -> None:
    procs = [_proc(0)]
    writer = Writer(procs)
    writer.pending.add(0)
    assert writer.write()[0]["status"] == "launching"
    writer.pending.discard(0)
    assert writer.write()[0]["status"] == "stopped"
    assert writer.cache.encoded == 2


def test_a_forgotten_app_leaves_the_state_and_the_cache() -> None:
    procs = [_proc(0), _proc(1)]
    writer = Writer(procs)
    writer.write()
    del procs[0]
    assert list(writer.write()) == [1]
    procs.insert(0, _proc(0))  # the pm_id again, a new app: encoded anew
    assert writer.write()[0]["unique_id"] == procs[0].unique_id
    assert writer.cache.encoded == 3


def _child(popen: subprocess.Popen) -> Child:
    loop = asyncio.new_event_loop()
    try:
        return Child(popen, popen.pid, (1, 2), loop.create_future(), loop.create_future())
    finally:
        loop.close()


def test_the_state_file_carries_each_change_of_a_running_daemon(pm: Any, corral_home: Path) -> None:
    pm.start("/bin/sleep", {"name": "napper", "args": ["60"], "interpreter": "none"})

    def entry() -> dict[str, Any]:
        """napper's entry in the state file ({} before a write names it)."""
        state = read_state(corral_home) or {"apps": []}
        found = [a for a in state["apps"] if a["name"] == "napper"]
        return found[0] if found else {"history": {}, "options": {}}

    wait_for(lambda: entry().get("status") == "online", what="saved online")
    first = entry()
    [info] = pm.restart("napper")
    wait_for(
        lambda: entry().get("pid") == info.pid and entry()["history"].get("restart_time") == 1,
        what="the restart's pid and count saved",
    )
    assert entry()["pid"] != first["pid"]
    pm.restart("napper", options={"max_restarts": 3})
    wait_for(lambda: entry()["options"].get("max_restarts") == 3, what="the new options saved")
    pm.stop("napper")
    wait_for(lambda: entry().get("status") == "stopped", what="saved stopped")
    assert entry()["pid"] is None
