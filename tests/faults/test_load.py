"""Many clients at once: every call answered, none refused by mistake, no deadlock.

Fifty threads, each with its own ``Client`` of one detached daemon, issue a mix
of commands for ten seconds. Each thread owns an app and a scratch app, so it
knows what every answer must be: an error is expected only where the thread
asked for it (deleting what it already deleted, starting what already runs).
Then ten clients restart one app at the same instant.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
import traceback
from pathlib import Path

import pytest

import corral
from corral.errors import NotFoundError, StateError
from tests.conftest import wait_for
from tests.core.test_daemon import alive, app_processes

SLEEP = shutil.which("sleep") or "/bin/sleep"
THREADS = 50
SECONDS = float(os.environ.get("CORRAL_LOAD_SECONDS", "10"))  # .ci/run: 5
JOIN_GRACE = 60.0  # past the window: a thread still running then is stuck


class Worker:
    """One thread's client and apps, and what it saw."""

    def __init__(self, index: int, until: float) -> None:
        self.client = corral.connect()
        self.own = f"own-{index}"
        self.scratch = f"scratch-{index}"
        self.scratch_up = False
        self.until = until
        self.random = random.Random(index)
        self.calls = 0
        self.slowest = 0.0
        self.failures: list[str] = []

    def app(self, name: str) -> dict:
        return {"script": SLEEP, "args": ["3600"], "name": name}

    def run(self) -> None:
        try:
            self.client.start(self.app(self.own))
            while time.monotonic() < self.until:
                action = self.random.choice(
                    ["list", "describe", "restart", "signal", "scratch", "scratch", "wrong"]
                )
                started = time.monotonic()
                getattr(self, f"do_{action}")()
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.calls += 1
        except Exception:
            self.failures.append(f"{self.own}: {traceback.format_exc()}")

    def do_list(self) -> None:
        names = {p.name for p in self.client.list()}
        assert self.own in names and (self.scratch in names) == self.scratch_up

    def do_describe(self) -> None:
        (info,) = self.client.describe(self.own)
        assert info.status == "online" and alive(info.pid), info.to_dict()

    def do_restart(self) -> None:
        (info,) = self.client.restart(self.own)
        assert info.status == "online"

    def do_signal(self) -> None:
        # SIGWINCH is ignored by sleep: the app must stay as it is
        (info,) = self.client.send_signal_to_process_name("SIGWINCH", self.own)
        assert info.status == "online"

    def do_scratch(self) -> None:
        if self.scratch_up:
            (gone,) = self.client.delete(self.scratch)
            assert gone.name == self.scratch
        else:
            (info,) = self.client.start(self.app(self.scratch))
            assert info.status == "online"
        self.scratch_up = not self.scratch_up

    def do_wrong(self) -> None:
        """A request the daemon must refuse, with the error that says why."""
        if self.scratch_up:
            with pytest.raises(StateError, match="already running"):
                self.client.start(self.app(self.scratch))
        else:
            with pytest.raises(NotFoundError):
                self.client.delete(self.scratch)


def test_fifty_clients_for_ten_seconds(pm, corral_home: Path) -> None:
    until = time.monotonic() + SECONDS
    workers = [Worker(i, until) for i in range(THREADS)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.1, until + JOIN_GRACE - time.monotonic()))
        stuck = [w.own for w, t in zip(workers, threads, strict=True) if t.is_alive()]
        assert not stuck, f"calls never answered (deadlock?) in {stuck}"
        failures = [f for w in workers for f in w.failures]
        assert not failures, f"{len(failures)} unexpected errors, first:\n{failures[0]}"
        calls = sum(w.calls for w in workers)
        print(
            f"\n{calls} calls by {THREADS} clients in {SECONDS:g} s "
            f"({calls / SECONDS:.0f}/s), slowest {max(w.slowest for w in workers):.2f} s"
        )
        assert all(w.calls > 0 for w in workers), [w.calls for w in workers]

        assert pm.ping()["pid"] == pm.daemon_pid
        final = {p.name: p for p in pm.list()}
        expected = {w.own for w in workers} | {w.scratch for w in workers if w.scratch_up}
        assert set(final) == expected
        assert {p.status for p in final.values()} == {"online"}
        pids = [p.pid for p in final.values()]
        assert len(set(pids)) == len(pids) and all(alive(pid) for pid in pids)
        wait_for(
            lambda: sorted(app_processes(corral_home, SLEEP)) == sorted(pids),
            timeout=10,
            what="one live process per app, no leftover",
        )
    finally:
        for worker in workers:
            worker.client.disconnect()


def test_ten_clients_restart_one_app_at_the_same_instant(pm, corral_home: Path) -> None:
    first = pm.start({"script": SLEEP, "args": ["3600"], "name": "one"})[0]
    clients = [corral.connect() for _ in range(10)]
    barrier = threading.Barrier(len(clients))
    answers: list[object] = []

    def restart(client: corral.Client) -> None:
        try:
            barrier.wait(10)
            answers.append(client.restart("one"))
        except Exception:
            answers.append(traceback.format_exc())

    threads = [threading.Thread(target=restart, args=(c,), daemon=True) for c in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not any(t.is_alive() for t in threads), "a restart never returned"
        errors = [a for a in answers if isinstance(a, str)]
        assert not errors, errors[0]
        assert len(answers) == 10
        final = pm.describe("one")[0]
        grew = final.restart_time - first.restart_time
        print(f"\n10 simultaneous restarts -> restart_time +{grew}")
        # coalesced or one by one, never lost and never more than asked
        assert final.status == "online" and 1 <= grew <= 10, grew
        # each reply shows a pid a restart started; a later restart may already be
        # stopping it by the time the reply is written
        pids = {a[0].pid for a in answers}
        assert first.pid not in pids and len(pids) <= grew, answers
        assert {p.status for a in answers for p in a} <= {"online", "stopping", "launching"}
        assert not alive(first.pid)
        wait_for(
            lambda: app_processes(corral_home, SLEEP) == [final.pid],
            timeout=10,
            what="exactly one live process",
        )
    finally:
        for client in clients:
            client.disconnect()
