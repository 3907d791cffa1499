"""The OS seam (corral.supervisor.system): a slot forks/execs, opens pidfds and waits only
through ``daemon.system``, so these tests replace it on one in-process daemon to
show what a real process cannot: a kernel without pidfds, a full descriptor table
at the fork, a child that dies between its exec and the daemon's watch.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from typing import Any

import pytest

import corral
from corral.errors import ScriptError
from corral.supervisor.system import System
from tests.conftest import PY, python_app, wait_for

CRASHES = "import time\ntime.sleep(0.3)\nraise SystemExit(3)\n"
SLEEPS = "import time\ntime.sleep(3600)\n"


class Grab:
    """A plugin that keeps the daemon it runs in (behind the facade: these tests
    replace its OS seam)."""

    def __init__(self) -> None:
        self.api: Any = None

    @corral.hookimpl
    def corral_daemon_start(self, daemon: Any) -> None:
        self.api = daemon

    @property
    def daemon(self) -> Any:
        return self.api._daemon


class NoPidfd(System):
    """A kernel (or Python) without pidfd_open: every exit is waited for in a thread."""

    def __init__(self) -> None:
        self.waited_in: list[str] = []

    def pidfd_open(self, pid: int) -> int:
        raise AttributeError("module 'os' has no attribute 'pidfd_open'")

    def wait(self, popen: Any) -> int:
        self.waited_in.append(threading.current_thread().name)
        return super().wait(popen)


class OutOfFds(System):
    """The daemon's descriptor table is full at every fork (EMFILE, even after the
    reserve is given back)."""

    def popen(self, spec: Any, creds: Any) -> Any:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))


class DiesAtExec(System):
    """The first child is SIGKILLed right after its exec, before the daemon watches
    it (a stop's signal landing in that window): it is a zombie by the time the
    pidfd is opened."""

    def __init__(self) -> None:
        self.killed: list[int] = []

    def popen(self, spec: Any, creds: Any) -> Any:
        result = super().popen(spec, creds)
        if not self.killed:
            pid = result[0].pid
            os.kill(pid, signal.SIGKILL)
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped
            self.killed.append(pid)
        return result


def test_without_pidfds_a_waiter_thread_still_restarts_a_crashed_app(corral_home, tmp_path):
    grab = Grab()
    fake = NoPidfd()
    app = python_app(tmp_path, "crash.py", CRASHES)
    with corral.connect(corral_home, no_daemon=True, plugins=[grab]) as client:
        grab.daemon.system = fake
        client.start(app, {"name": "crash", "interpreter": PY})
        wait_for(lambda: client.describe("crash")[0].restart_time >= 2, timeout=20)
        client.delete("crash")
    # each exit was reaped by a waiter thread, never on the loop's thread
    assert len(fake.waited_in) >= 2
    assert all(name != "corral-daemon" for name in fake.waited_in)


def test_out_of_fds_at_the_fork_errors_the_slot_and_the_daemon_lives(corral_home, tmp_path):
    grab = Grab()
    app = python_app(tmp_path, "sleeps.py", SLEEPS)
    with corral.connect(corral_home, no_daemon=True, plugins=[grab]) as client:
        client.start(app, {"name": "sleeps", "interpreter": PY, "autostart": False})
        real = grab.daemon.system
        grab.daemon.system = OutOfFds()
        with pytest.raises(ScriptError, match="out of file descriptors"):
            client.restart("sleeps")
        (info,) = client.describe("sleeps")
        assert info.status == "errored" and info.pid is None
        assert "out of file descriptors" in grab.daemon.procs[info.pm_id].last_reason
        grab.daemon.system = real  # descriptors again: the same slot starts
        client.restart("sleeps")
        (info,) = client.describe("sleeps")
        assert info.status == "online" and info.pid is not None
        client.delete("sleeps")


def test_a_child_dead_before_it_is_watched_is_noticed_and_restarted(corral_home, tmp_path):
    grab = Grab()
    fake = DiesAtExec()
    app = python_app(tmp_path, "sleeps.py", SLEEPS)
    with corral.connect(corral_home, no_daemon=True, plugins=[grab]) as client:
        grab.daemon.system = fake
        client.start(app, {"name": "sleeps", "interpreter": PY})
        wait_for(lambda: client.describe("sleeps")[0].restart_time >= 1, timeout=20)
        wait_for(lambda: client.describe("sleeps")[0].status == "online", timeout=20)
        (info,) = client.describe("sleeps")
        assert info.pid not in fake.killed and info.pid is not None
        os.kill(info.pid, 0)  # the restarted child runs
        client.delete("sleeps")
    with pytest.raises(ChildProcessError):
        os.waitpid(fake.killed[0], os.WNOHANG)  # the killed one was reaped by the daemon
