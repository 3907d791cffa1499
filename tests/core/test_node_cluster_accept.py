"""Node cluster mode: the shared listening socket the daemon hands to every instance
is non-blocking, as node's own cluster primary makes it (libuv creates it so).

Every instance waits in epoll on the one socket; a new connection wakes them all and
one wins the ``accept``. On a blocking socket the others' ``accept`` then blocks their
whole event loop until another connection comes: their kept-alive connections get no
answer meanwhile (the 10 s keep-alive timeout of test_two_reloads_under_load_drop_nothing,
seen in CI). O_NONBLOCK belongs to the open file that every instance shares, so it is
the daemon's to set when it binds."""

from __future__ import annotations

import os
import re
import shutil
import socket

import psutil
import pytest

from tests.conftest import wait_for

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def online(pm, count: int) -> list | None:
    procs = pm.describe("plain")
    if len(procs) == count and all(p.status == "online" and p.pid and p.ready for p in procs):
        return procs
    return None


def listening_flags(pid: int, port: int) -> int:
    """The open-file flags (as /proc's fdinfo shows them) of ``pid``'s socket
    listening on ``port``."""
    (fd,) = [
        c.fd
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    with open(f"/proc/{pid}/fdinfo/{fd}") as f:
        found = re.search(r"^flags:\s+([0-7]+)$", f.read(), re.MULTILINE)
    assert found, f"no flags in /proc/{pid}/fdinfo/{fd}"
    return int(found.group(1), 8)


def test_every_instance_accepts_on_a_non_blocking_socket(pm, app_path):
    port = free_port()
    options = {"name": "plain", "exec_mode": "cluster", "instances": 2}
    pm.start(app_path("plain_listen.js"), {**options, "env": {"APP_PORT": str(port)}})
    procs = wait_for(lambda: online(pm, 2), 15)
    for proc in procs:
        flags = listening_flags(proc.pid, port)
        assert flags & os.O_NONBLOCK, f"pid {proc.pid}: the shared socket is blocking ({flags:o})"
    reloaded = pm.reload("plain")  # the new instances get the socket the daemon kept
    assert not {p.pid for p in procs} & {p.pid for p in reloaded}
    for proc in reloaded:
        assert listening_flags(proc.pid, port) & os.O_NONBLOCK
