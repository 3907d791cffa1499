"""Two daemons embedded in one process: each runs its own cron, memory and watch.

The plugins keep their state per daemon (``DaemonAPI.state``), so a second
daemon in the process gets its own scheduler, sampling thread and watchers,
and stopping one daemon leaves the other's working. Real daemons, real
children, real files.
"""

from __future__ import annotations

from pathlib import Path

import corral
from corral.plugins import cron, memory, watch
from corral.testing import EventRecorder, wait_for, wait_for_event
from tests.conftest import PY, python_app

MB = 1024**2

# Holds argv[2] bytes on its first run only (the marker says it ran), so the
# restarted child stays small.
GROWER = """\
import os, sys, time
marker, size = sys.argv[1], int(sys.argv[2])
if not os.path.exists(marker):
    open(marker, "w").close()
    data = b"\\x01" * size
print("up", flush=True)
while True:
    time.sleep(3600)
"""

SLEEPER = """\
import time
print("up", flush=True)
while True:
    time.sleep(3600)
"""


class Side:
    """One daemon, its recorder and its apps' directory."""

    def __init__(self, label: str, home: Path, tmp: Path, plugins: list) -> None:
        self.label = label
        self.events = EventRecorder()
        self.dir = tmp / label
        (self.dir / "src").mkdir(parents=True)
        self.pm = corral.connect(home, no_daemon=True, plugins=[*plugins, self.events])

    def name(self, app: str) -> str:
        return f"{self.label}-{app}"

    def start_apps(self) -> None:
        sleeper = python_app(self.dir, "sleeper.py", SLEEPER)
        grower = python_app(self.dir, "grower.py", GROWER)
        self.pm.start(
            sleeper,
            {"name": self.name("ticker"), "exec_interpreter": PY, "cron_restart": "* * * * * *"},
        )
        self.grow(grower, "grower")
        self.pm.start(
            sleeper,
            {
                "name": self.name("watched"),
                "exec_interpreter": PY,
                "cwd": str(self.dir),
                "watch": ["src"],
            },
        )

    def grow(self, script: str, app: str) -> None:
        self.pm.start(
            script,
            {
                "name": self.name(app),
                "exec_interpreter": PY,
                "args": [str(self.dir / f"{app}.marker"), str(80 * MB)],
                "max_memory_restart": "40M",
                "memory_interval": 100,
            },
        )

    def restarts(self, app: str, why: str) -> list[corral.ProcessEvent]:
        return self.events.matching("restart", self.name(app), reason=why)

    def names_restarted(self) -> set[str]:
        return {e.name for e in self.events.matching("restart")}

    def pids(self) -> list[int]:
        return [p.pid for p in self.pm.list() if p.pid]


def test_two_embedded_daemons_each_run_their_own_cron_memory_and_watch(
    corral_home: Path, second_corral_home: Path, tmp_path: Path
) -> None:
    # one daemon loads the plugins by entry-point name, the other as modules
    a = Side("a", corral_home, tmp_path, ["cron", "memory", "watch"])
    try:
        b = Side("b", second_corral_home, tmp_path, [cron, memory, watch])
    except BaseException:
        a.pm.disconnect()
        raise
    a_pids: list[int] = []
    try:
        a.start_apps()
        b.start_apps()
        a_pids = a.pids()

        # cron: each daemon ticks its own app
        for side in (a, b):
            wait_for_event(side.events, "restart", side.name("ticker"), reason="cron", timeout=10)
            [job] = side.pm.call("cron_jobs")
            assert job["name"] == side.name("ticker")

        # memory: each limit restarts its own grower, once
        for side in (a, b):
            wait_for_event(
                side.events, "restart", side.name("grower"), reason="max_memory_restart", timeout=10
            )
            [grower] = [p for p in side.pm.list() if p.name == side.name("grower")]
            stats = wait_for(lambda s=side: s.pm.call("memory_stats"), timeout=5, what="a sample")
            assert list(stats) == [str(grower.pm_id)]

        # watch: a change in a's directory restarts a's app, not b's
        (a.dir / "src" / "x.py").write_text("1")
        wait_for_event(a.events, "restart", a.name("watched"), reason="file changed", timeout=10)
        assert b.restarts("watched", "file changed") == []
        (b.dir / "src" / "x.py").write_text("1")
        wait_for_event(b.events, "restart", b.name("watched"), reason="file changed", timeout=10)
        assert len(a.restarts("watched", "file changed")) == 1
        for side in (a, b):
            watching = {row["name"] for row in side.pm.call("watch_status") if row["watching"]}
            assert watching == {side.name("watched")}
            assert side.names_restarted() <= {side.name(n) for n in ("ticker", "grower", "watched")}
    finally:
        a.pm.disconnect()
    try:
        # a is gone with its apps; b's cron, memory and watch go on
        wait_for(
            lambda: not any(_alive(pid) for pid in a_pids), timeout=10, what="a's apps stopped"
        )
        since = b.events.mark()
        wait_for_event(
            b.events, "restart", b.name("ticker"), reason="cron", since=since, timeout=10
        )
        (b.dir / "src" / "y.py").write_text("2")
        wait_for_event(
            b.events, "restart", b.name("watched"), reason="file changed", since=since, timeout=10
        )
        b.grow(python_app(b.dir, "grower.py", GROWER), "grower2")
        wait_for_event(
            b.events, "restart", b.name("grower2"), reason="max_memory_restart", timeout=10
        )
    finally:
        b.pm.disconnect()


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
