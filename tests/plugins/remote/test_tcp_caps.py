"""TCP caps: unauthenticated clients cannot take the daemon's file descriptors.

With ``rpc_address`` set, the daemon accepts TCP itself: at most
``tcp_max_per_source`` connections from one IP address and
``tcp_max_connections`` in all (fewer at a low fd limit), and a connection
that says nothing for ``tcp_handshake_timeout`` seconds is closed. A flood of
idle connections at ``ulimit -n 256`` leaves a crashed app restarted, the
state file written and the local socket answering.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import corral
from corral.testing import wait_for
from tests.faults.test_security import free_port

SLEEP = "/bin/sleep"


@pytest.fixture
def tcp_home(corral_home: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    yield corral_home, port


def start_tcp_daemon(home: Path, port: int, **settings: object) -> corral.Client:
    lines = [f"rpc_address: tcp://127.0.0.1:{port}"]
    lines += [f"{key}: {value}" for key, value in settings.items()]
    (home / "corral.yaml").write_text("\n".join(lines) + "\n")
    return corral.connect()


def refusals(home: Path) -> list[dict]:
    lines = (home / "corral.log").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in records if r.get("event", "").startswith("refused a TCP client")]


def state_pids(home: Path) -> list[int]:
    return [app["pid"] for app in json.loads((home / "state.json").read_text())["apps"]]


def connect_from(source: str, port: int) -> socket.socket | None:
    """A TCP connection from ``source`` (any 127.x.y.z is this machine), or None."""
    sock = socket.socket()
    try:
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    """True when the other end closes ``sock`` (or resets it) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
            # zmq's greeting: the daemon took the connection in; keep listening
    except TimeoutError:
        return False
    except ConnectionError:
        return True


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


def test_connections_are_capped_per_source_and_in_total(tcp_home) -> None:
    home, port = tcp_home
    pm = start_tcp_daemon(
        home, port, tcp_max_per_source=4, tcp_max_connections=8, tcp_handshake_timeout=60
    )
    try:
        with sockets() as held:
            for _ in range(6):
                held.append(connect_from("127.0.0.2", port))
            assert all(held)
            kept = [s for s in held if not closed_by_peer(s, 0.5)]
            assert len(kept) == 4, "the cap per source (4) is not kept"
            for _ in range(4):
                held.append(connect_from("127.0.0.3", port))
            assert not any(closed_by_peer(s, 0.5) for s in held[-4:])
            late = connect_from("127.0.0.4", port)
            assert late is not None
            held.append(late)
            assert closed_by_peer(late, 3), "the cap in all (8) is not kept"
            # an authorised client gets in once there is room again
            for sock in held[6:10]:
                sock.close()
            keys = home / "keys"
            far = corral.connect(
                address=f"tcp://127.0.0.1:{port}",
                server_key=keys / "server.key",
                client_key=keys / "client.key_secret",
            )
            assert far.ping()["pid"] == pm.daemon_pid
            far.disconnect()
        kinds = wait_for(
            lambda: (
                {r["refusal"] for r in refusals(home)} >= {"too-many-from-source"}
                and [r["refusal"] for r in refusals(home)]
            ),
            what="the refusals in corral.log",
        )
        assert "too-many-connections" in kinds
        assert sorted(set(kinds)) == sorted(kinds), "a kind logged twice in a minute"
    finally:
        pm.kill_daemon()


def test_a_silent_connection_is_closed_after_the_handshake_timeout(tcp_home) -> None:
    home, port = tcp_home
    pm = start_tcp_daemon(home, port, tcp_handshake_timeout=1)
    try:
        silent = connect_from("127.0.0.5", port)
        assert silent is not None
        try:
            assert closed_by_peer(silent, 5)
        finally:
            silent.close()
        wait_for(lambda: [r for r in refusals(home) if r["refusal"] == "silent"], what="logged")
    finally:
        pm.kill_daemon()


@pytest.mark.parametrize("setting", ["tcp_max_per_source: 0", "tcp_handshake_timeout: soon"])
def test_a_bad_cap_stops_the_start(corral_home: Path, setting: str) -> None:
    (corral_home / "corral.yaml").write_text(f"rpc_address: tcp://127.0.0.1:1\n{setting}\n")
    with pytest.raises(corral.ConfigError, match=setting.split(":")[0]):
        corral.connect()


def test_an_idle_flood_at_a_low_fd_limit_leaves_the_daemon_working(tcp_home) -> None:
    home, port = tcp_home
    pm = start_tcp_daemon(home, port)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # the test's own
    try:
        pm.start(SLEEP, {"name": "victim", "args": ["3600"]})
        first = wait_for(lambda: pm.describe("victim")[0].pid, what="the app's pid")
        daemon = psutil.Process(pm.daemon_pid)
        daemon.rlimit(psutil.RLIMIT_NOFILE, (256, 256))  # as `prlimit --nofile=256`
        with sockets() as held:
            for n in range(1100):
                sock = connect_from(f"127.0.{2 + n // 200}.{1 + n % 200}", port)
                if sock is not None:
                    held.append(sock)
            wait_for(lambda: daemon.num_fds() < 200, what="the refused connections closed")
            os.kill(first, signal.SIGKILL)  # a crash: the restart needs new descriptors
            info = wait_for(
                lambda: [
                    p for p in pm.describe("victim") if p.status == "online" and p.pid != first
                ],
                timeout=20,
                what="the crashed app restarted",
            )[0]
            wait_for(
                lambda: state_pids(home) == [info.pid],
                what="the state file written with the new pid",
            )
            assert pm.ping()["pid"] == pm.daemon_pid
            assert [p.name for p in pm.list()] == ["victim"]
            assert daemon.num_fds() < 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        with contextlib.suppress(corral.CorralError):
            pm.kill_daemon()


def test_a_crash_restart_with_a_full_fd_table_uses_the_reserve(pm, corral_home: Path) -> None:
    """The daemon's fd table is full (its limit lowered under what it holds): a crashed
    app is restarted from the reserve and the state file still written, twice over."""
    pm.start(SLEEP, {"name": "victim", "args": ["3600"]})
    pid = wait_for(lambda: pm.describe("victim")[0].pid, what="the app's pid")
    daemon = psutil.Process(pm.daemon_pid)
    hard = daemon.rlimit(psutil.RLIMIT_NOFILE)[1]
    daemon.rlimit(psutil.RLIMIT_NOFILE, (daemon.num_fds(), hard))
    try:
        for _ in range(2):
            os.kill(pid, signal.SIGKILL)
            new = wait_for(
                lambda old=pid: [p for p in pm.list() if p.status == "online" and p.pid != old],
                timeout=20,
                what="the crashed app restarted",
            )[0].pid
            wait_for(lambda n=new: state_pids(corral_home) == [n], what="the state file")
            pid = new
        assert pm.ping()["pid"] == pm.daemon_pid
    finally:
        daemon.rlimit(psutil.RLIMIT_NOFILE, (1024, hard))
