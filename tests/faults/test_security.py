"""Security: a private home, private sockets and files.

The home checks run before anything is created or started. Without
``rpc_address`` the daemon has no inet socket at all; TCP, only with CURVE,
is the remote plugin's (tests/plugins/remote/test_remote.py).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import corral
from corral.testing import wait_for

PY = sys.executable
REFUSED_WITHIN = 2.0  # seconds a refused client waits for an answer that never comes


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def inet_listeners(pid: int) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


def new_children(before: set[int]) -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)} - before


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PY, "-m", "corral", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
    )


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A known umask, so a file created without an explicit mode shows up as 0644."""
    old = os.umask(0o022)
    yield
    os.umask(old)


# -- the home ---------------------------------------------------------------------


@pytest.mark.parametrize("unsafe", [0o770, 0o702], ids=["group-writable", "other-writable"])
def test_a_home_others_can_write_is_refused_before_anything_starts(
    corral_home: Path, unsafe: int
) -> None:
    os.chmod(corral_home, unsafe)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(corral.DaemonError, match=f"run `chmod 700 {corral_home}`"):
        corral.connect()
    cli = run_cli("ls")
    assert cli.returncode == 1
    assert cli.stderr.splitlines() == [
        f"error: CORRAL_HOME {corral_home} is writable by other users: "
        f"run `chmod 700 {corral_home}`"
    ]
    assert list(corral_home.iterdir()) == []  # no logs/, no lock, no socket, no daemon
    assert new_children(before) == set()


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_a_home_of_another_user_is_refused(corral_home: Path) -> None:
    nobody = 65534
    os.chown(corral_home, nobody, nobody)
    with pytest.raises(corral.DaemonError, match="belongs to uid 65534, not to you") as caught:
        corral.connect()
    assert "set CORRAL_HOME to a directory of your own" in str(caught.value)
    assert list(corral_home.iterdir()) == []


def test_the_daemon_entry_point_refuses_an_unsafe_home_and_creates_nothing(
    corral_home: Path,
) -> None:
    os.chmod(corral_home, 0o770)
    done = subprocess.run(
        [PY, "-m", "corral.daemon.main"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert f"run `chmod 700 {corral_home}`" in done.stderr
    assert list(corral_home.iterdir()) == []


def test_the_daemon_entry_point_says_why_in_one_line(corral_home: Path) -> None:
    os.chmod(corral_home, 0o770)
    done = subprocess.run(
        [PY, "-m", "corral.daemon.main"], capture_output=True, text=True, timeout=60
    )
    assert done.stderr.splitlines() == [
        f"corral daemon: CORRAL_HOME {corral_home} is writable by other users: "
        f"run `chmod 700 {corral_home}`"
    ]


# -- private files, no inet socket ------------------------------------------------------


def test_sockets_logs_and_state_are_private(
    corral_home: Path, scripted_app, umask_022: None
) -> None:
    client = corral.connect(plugins=["bus"])
    try:
        client.start(scripted_app(print_lines=1), {"name": "app"})
        client.dump()
        client.dump()  # the second keeps the first as dump.corral.bak
        wait_for(lambda: (corral_home / "state.json").exists(), what="the state file")
        for name in ("rpc.sock", "notify.sock", "pub.sock"):
            path = corral_home / name
            assert stat.S_ISSOCK(path.stat().st_mode), name
            assert mode(path) == 0o600, name
        for name in ("corral.log", "state.json", "dump.corral", "dump.corral.bak"):
            assert mode(corral_home / name) == 0o600, name
        for name in ("", "logs", "pids"):
            assert mode(corral_home / name) == 0o700, name or "the home"
        app_logs = list((corral_home / "logs").iterdir())
        assert app_logs
        for path in app_logs:
            assert mode(path) & 0o007 == 0, f"{path.name} is open to other users"
    finally:
        client.kill_daemon()


def test_no_inet_socket_without_rpc_address(pm, corral_home: Path, scripted_app) -> None:
    pm.start(scripted_app(), {"name": "app"})
    assert inet_listeners(pm.daemon_pid) == []
    assert not (corral_home / "keys").exists()  # no TCP, no keys made
