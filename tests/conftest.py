"""Fixtures shared by every test: a private CORRAL_HOME, real daemons, cleanup by pid."""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import zmq

from corral.testing import kill_tree, wait_for

# corral_home (a private CORRAL_HOME, everything started in it killed by pid) comes
# from corral.testing, as plugin authors get it
__all__ = ["APPS", "PY", "kill_pids", "out_lines", "python_app", "wait_for"]

APPS = Path(__file__).parent / "apps"

# pytester runs the plugin-author tests of corral.testing (tests/core/test_testing.py)
pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    # corral.testing arrives through its pytest11 entry point once that is installed;
    # listing it in pytest_plugins too would register it twice, which pytest refuses
    import corral.testing

    if not config.pluginmanager.is_registered(corral.testing):
        config.pluginmanager.register(corral.testing, "corral.testing")


def kill_pids(pids: list[int]) -> None:
    """SIGKILL each pid with its descendants, for processes no fixture knows about."""
    for pid in pids:
        kill_tree(pid)


def out_lines(info: object) -> list[str]:
    """The lines an app wrote to its out log so far."""
    path = info.out_log  # type: ignore[attr-defined]
    assert path
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


@pytest.fixture
def pm(corral_home: Path) -> Iterator[object]:
    """A client of a real detached daemon on ``corral_home``; killed at teardown."""
    import corral

    client = corral.connect()
    yield client
    with contextlib.suppress(Exception):
        client.kill_daemon()
    client.disconnect()


@pytest.fixture
def with_logrotate(corral_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Daemons started after it (list it before ``pm``) load the logrotate plugin, whose
    ``reload_logs`` is, with no rotation by time."""
    (corral_home / "logrotate.json").write_text('{"rotate_interval": "off"}')
    monkeypatch.setenv("CORRAL_PLUGINS", "logrotate")


@pytest.fixture
def raw(corral_home, pm):
    """A bare DEALER socket on the daemon's RPC address."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{corral_home}/rpc.sock")
    yield sock
    sock.close(linger=0)
    ctx.term()


@pytest.fixture
def app_path() -> Callable[[str], str]:
    def path(name: str) -> str:
        return str(APPS / name)

    return path


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``corral ARGS`` in a subprocess (wide columns); ``check``: assert it exits 0."""
    result = subprocess.run(
        [sys.executable, "-m", "corral", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def assert_start_refused(conf: Path, message: str, pm: object) -> None:
    """``corral start CONF`` exits 1 with one ``error: CONF: MESSAGE...`` line and
    starts nothing."""
    done = run_cli("start", str(conf), check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: {conf}: {message}"), done.stderr
    assert done.stderr.count("\n") == 1
    assert pm.list() == []  # type: ignore[attr-defined]


def python_app(tmp: Path, name: str, body: str) -> str:
    """Write a small Python app into ``tmp`` and return its path."""
    path = tmp / name
    path.write_text(body)
    return str(path)


PY = sys.executable


@pytest.fixture(autouse=True)
def dev_null_stays_a_device() -> Iterator[None]:
    """Fail the test after which /dev/null is no longer the character device (a daemon
    that unlinked or renamed it as root, then anything writing there makes a plain file),
    and put the device back, so one such bug cannot poison the tests after it."""
    yield
    if stat.S_ISCHR(os.lstat(os.devnull).st_mode):
        return
    if os.geteuid() == 0:
        os.unlink(os.devnull)
        os.mknod(os.devnull, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.chmod(os.devnull, 0o666)
    pytest.fail("this test left /dev/null a plain file (something unlinked or replaced it)")


@pytest.fixture
def app_user() -> Iterator[str]:
    """A real user made for this test (``useradd``), removed after it (``userdel -r``).

    Ask for it before ``pm``: its teardown then runs after the daemon's, once the
    apps run as this user are gone (``userdel`` refuses a user with processes)."""
    name = f"crl{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    uid = pwd.getpwnam(name).pw_uid
    try:
        yield name
    finally:
        wait_for(
            lambda: not [p for p in psutil.process_iter(["uids"]) if p.info["uids"].real == uid]
        )
        done = subprocess.run(["userdel", "-r", name], capture_output=True, text=True)
        assert done.returncode in (0, 12), done.stderr  # 12: no mail spool to remove


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can read (the script of an app run as another user)."""
    path = Path(tempfile.mkdtemp(prefix="corral-shared-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)
