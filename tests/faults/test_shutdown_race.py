"""Shutdown races: once ``kill_daemon`` begins, nothing may spawn.

A plugin that restarts an app (memory limit, file change, cron tick) may be in
the middle of a restart when the daemon is told to stop: its stop is done and
its spawn is next. That spawn must not happen, or the new child runs on with
no daemon and no state file naming it. The storm here is a plugin calling
``daemon.request_restart`` from a thread as fast as it can, as the memory,
watch and cron plugins do from theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

import corral
from corral.errors import StateError
from tests.conftest import kill_pids, python_app, wait_for

SLEEP = shutil.which("sleep") or "/bin/sleep"
# 30 by default; .ci/run runs 6 (the bug showed in about half of the tries: 6 miss it
# with a chance of 1 in 64)
TRIES = int(os.environ.get("CORRAL_RACE_TRIES", "30"))

# Exits at once on SIGINT but leaves a child slower to go, so a restart's stop spends a
# while on that leftover after the main pid exited: kill_daemon landing then used to let
# the restart spawn a new tree, which no state file named (14 and 15 of 30 tries).
SLOW_STOP = """\
import subprocess, sys
LEFTOVER = "import signal, sys, time; " \\
    "signal.signal(2, lambda *_: (time.sleep(0.1), sys.exit(0))); time.sleep(3600)"
subprocess.Popen([sys.executable, "-c", LEFTOVER])
subprocess.run(["sleep", "3600"])
"""


class Storm:
    """A plugin that restarts one app from a thread, over and over, until told to stop."""

    def __init__(self) -> None:
        self.daemon: Any = None
        self.done = threading.Event()
        self.thread: threading.Thread | None = None

    @corral.hookimpl
    def corral_daemon_start(self, daemon: Any) -> None:
        self.daemon = daemon

    def blow(self, pm_id: int) -> None:
        def run() -> None:
            while not self.done.is_set():
                try:
                    future = self.daemon.request_restart(pm_id, "storm")
                except RuntimeError:
                    return  # the daemon's loop is closed
                with contextlib.suppress(Exception):
                    future.result(timeout=5)
                self.done.wait(0.1)  # the new child sets its SIGINT handler

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def calm(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(10)


def marked(mark: str) -> list[int]:
    """Live processes (not zombies) whose environment carries ``mark``."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("STORM_MARK") == mark and proc.status() != "zombie":
                found.append(proc.pid)
    return found


def one_try(home: Path, app: str) -> list[int]:
    """Storm an app with restarts, kill the daemon mid-storm; the app's pids still alive."""
    mark = str(uuid.uuid4())
    storm = Storm()
    client = corral.connect(home, no_daemon=True, plugins=[storm])
    try:
        (info,) = client.start(app, {"name": "stormy", "env": {"STORM_MARK": mark}})
        storm.blow(info.pm_id)
        wait_for(lambda: client.describe("stormy")[0].restart_time >= 2, timeout=10)
        client.kill_daemon()
    finally:
        storm.calm()
        with contextlib.suppress(Exception):
            client.disconnect()
    # a stopped child may take a moment to be gone; one spawned past the stop never goes
    with contextlib.suppress(AssertionError, TimeoutError):
        wait_for(lambda: not marked(mark), timeout=3)
    left = marked(mark)
    kill_pids(left)
    return left


def test_kill_daemon_during_a_plugin_restart_storm_leaves_no_app_running(corral_home, tmp_path):
    app = python_app(tmp_path, "slow_stop.py", SLOW_STOP)
    survivors = [left for _ in range(TRIES) if (left := one_try(corral_home, app))]
    assert not survivors, f"{len(survivors)} of {TRIES} tries left the app running: {survivors}"


def test_spawn_refuses_once_shutdown_began(corral_home):
    """Every caller of spawn (start, restart, scale, respawn timers, plugins) meets this."""
    storm = Storm()
    with corral.connect(corral_home, no_daemon=True, plugins=[storm]) as client:
        (info,) = client.start(SLEEP, {"name": "late", "args": ["3600"], "autostart": False})
        daemon = storm.daemon._daemon  # behind the plugin facade: this test drives spawn
        proc = daemon.procs[info.pm_id]

        async def spawn_while_shutting_down() -> None:
            daemon.shutting_down = True
            try:
                proc.slot.spawn(is_restart=False)
            finally:
                daemon.shutting_down = False

        future = asyncio.run_coroutine_threadsafe(spawn_while_shutting_down(), daemon.loop)
        with pytest.raises(StateError, match="shutting down"):
            future.result(timeout=10)
        (after,) = client.describe("late")
        assert after.pid is None and after.status == "stopped"
