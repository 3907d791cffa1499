"""CORRAL_HOME is resolved once, and no other user can swap it afterwards.

The home's ownership check used to follow a symbolic link and the daemon kept
resolving its paths through it: another user who owned the link (or a
directory above the home) repointed it, and the next ``reload_logs`` (or a
scheduled logrotate) appended app output to a root-owned 0600 file of their
choosing. Now every component is checked (links and directories belong to root
or to the daemon's user, no directory writable by others unless sticky), the
daemon works on the real directory, and opens its logs and pid files relative
to descriptors of ``logs/`` and ``pids/`` (corral/paths.py).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import corral
from corral.testing import kill_tree, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="another user's link needs root")

CHATTY = "import time\nwhile True:\n    print('app line', flush=True)\n    time.sleep(0.02)\n"


@pytest.fixture
def other_user() -> Iterator[pwd.struct_passwd]:
    """A real second user (``useradd``), removed after the test (``userdel -r``)."""
    name = f"crh{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", "-r", name], capture_output=True)


@pytest.fixture
def base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short root-owned directory in /tmp (a unix socket path must stay short)."""
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    monkeypatch.delenv("CORRAL_DUMP_FILE", raising=False)
    path = Path(tempfile.mkdtemp(prefix="ch-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=False)


def victim(directory: Path) -> Path:
    path = directory / "victim"
    path.write_text("precious\n")
    path.chmod(0o600)
    return path


def refused(home: Path, match: str) -> str:
    """``connect`` to an in-process daemon on ``home`` must fail with ``match``."""
    try:
        client = corral.connect(home, no_daemon=True)
    except corral.DaemonError as exc:
        assert match in str(exc) and "\n" not in str(exc), str(exc)
        return str(exc)
    client.disconnect()
    pytest.fail(f"CORRAL_HOME {home} was accepted")


def test_a_symlinked_home_owned_by_another_user_is_refused(base, other_user):
    real = base / "real"
    real.mkdir(mode=0o700)  # root's own directory: the old check, through the link, passed
    link = Path("/tmp") / f"corral-home-{uuid.uuid4().hex[:8]}"  # sticky /tmp, their link
    link.symlink_to(real)
    os.lchown(link, other_user.pw_uid, other_user.pw_gid)
    try:
        message = refused(link, "symbolic link")
        assert str(link) in message and f"uid {other_user.pw_uid}" in message
        assert list(real.iterdir()) == []  # no logs/, no socket, no daemon
    finally:
        link.unlink()


def test_a_home_below_a_directory_of_another_user_is_refused(base, other_user):
    theirs = base / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, other_user.pw_uid, other_user.pw_gid)  # they can rename home away
    home = theirs / "home"
    home.mkdir(mode=0o700)
    message = refused(home, f"can be changed by uid {other_user.pw_uid}")
    assert str(theirs) in message
    assert list(home.iterdir()) == []


def test_a_symlinked_home_of_root_is_resolved_once(base):
    real = base / "real"
    real.mkdir(mode=0o700)
    link = base / "home"
    link.symlink_to(real)
    client = corral.connect(link, no_daemon=True)
    try:
        assert client.home == real
    finally:
        client.disconnect()


def test_a_home_link_repointed_after_start_is_not_followed(base, tmp_path):
    real = base / "real"
    real.mkdir(mode=0o700)
    link = base / "home"
    link.symlink_to(real)
    target = victim(base)
    script = tmp_path / "chat.py"
    script.write_text(CHATTY)
    client = corral.connect(link, no_daemon=True, plugins=["logrotate"])  # reload_logs is its
    pid = None
    try:
        pid = client.start(str(script), {"name": "chat"})[0].pid
        out_log = real / "logs" / "chat-out.log"
        wait_for(lambda: out_log.exists() and "app line" in out_log.read_text())
        # the swap: a home whose files are links to the victim, then the link repointed
        evil = base / "evil"
        (evil / "logs").mkdir(parents=True)
        (evil / "pids").mkdir()
        for name in ("logs/chat-out.log", "logs/chat-error.log", "corral.log"):
            (evil / name).symlink_to(target)
        (evil / "rpc.sock").symlink_to(real / "rpc.sock")  # the client still reaches it
        swap = base / "home.new"
        swap.symlink_to(evil)
        os.replace(swap, link)
        client.reload_logs()  # what logrotate's scheduled reopen does too
        size = out_log.stat().st_size
        # lines keep coming: into the real file, never through the new link into the victim
        wait_for(lambda: out_log.stat().st_size > size or target.read_text() != "precious\n")
        assert target.read_text() == "precious\n"
        client.flush()
        client.restart("chat")
        wait_for(lambda: "app line" in out_log.read_text())
        assert target.read_text() == "precious\n"
    finally:
        if pid is not None:
            for info in client.list():
                if info.pid:
                    kill_tree(info.pid)
        client.disconnect()


def test_ensure_home_costs_little(base):
    """Resolving the home component by component (every CLI command does it once)."""
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from corral import paths\n"
        f"home = Path({str(base / 'cost')!r})\n"
        "paths.ensure_home(home)\n"
        "t = time.perf_counter()\n"
        "for _ in range(1000): paths.ensure_home(home)\n"
        "print((time.perf_counter() - t) / 1000 * 1e6)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 5000  # microseconds
