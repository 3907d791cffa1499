"""A root daemon lends no rights through an app's log and pid files.

PM2 writes ``pid_file`` over whatever is there and deletes it at stop, and opens
``out_file`` as root: ``pid_file: /etc/passwd`` in a cloned project's config
destroys the file, ``out_file: /etc/shadow`` with ``uid: nobody`` appends to it.
corral creates a pid file itself (O_EXCL, as the app), writes and removes only
that inode, and opens every log an app's options name as the app's user, never
through a symbolic link (corral/pidfile.py, corral/asuser.py).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

from corral.errors import OptionError
from corral.testing import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon is the subject")

PYTHON = "/usr/bin/python3"  # the venv's may be out of reach of the test user
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
CHATTY = "import time\nwhile True:\n    print('app line', flush=True)\n    time.sleep(0.02)\n"


def victim(directory: Path, name: str = "victim") -> Path:
    """A root-owned 0600 file standing for /etc/passwd."""
    path = directory / name
    path.write_text("precious\n")
    path.chmod(0o600)
    return path


def script(directory: Path, source: str = SLEEPER) -> str:
    path = directory / "app.py"
    path.write_text(source)
    path.chmod(0o644)
    return str(path)


def refused(pm, field: str, path: Path, start) -> str:
    with pytest.raises(OptionError) as caught:
        start()
    message = str(caught.value)
    assert caught.value.field == field, message
    assert field in message and str(path) in message and "\n" not in message, message
    assert pm.list() == []  # nothing half-made
    return message


# -- pid_file --------------------------------------------------------------------------


def test_an_existing_pid_file_is_neither_overwritten_nor_deleted(pm, tmp_path):
    target = victim(tmp_path)  # `corral start s.py --name p --opt pid_file=/tmp/victim`
    message = refused(
        pm, "pid_file", target, lambda: pm.start(script(tmp_path), {"pid_file": str(target)})
    )
    assert "did not create" in message and "remove it" in message
    assert target.read_text() == "precious\n"


def test_a_pid_file_that_is_a_link_to_a_victim_is_refused(pm, tmp_path):
    target = victim(tmp_path)
    link = tmp_path / "app-pid"
    link.symlink_to(target)
    message = refused(
        pm, "pid_file", link, lambda: pm.start(script(tmp_path), {"pid_file": str(link)})
    )
    assert "symbolic link" in message
    assert target.read_text() == "precious\n" and link.is_symlink()


def test_a_pid_file_swapped_for_a_link_is_not_written_through_nor_deleted(pm, tmp_path):
    target = victim(tmp_path)
    pid_file = tmp_path / "app-pid"  # no .pid suffix: no -<pm_id> is added
    pm.start(script(tmp_path), {"name": "p", "pid_file": str(pid_file)})
    wait_for(lambda: pid_file.exists() and pid_file.read_text() == str(pm.describe("p")[0].pid))
    pid_file.unlink()  # someone who can write the directory swaps it for a link
    pid_file.symlink_to(target)
    pm.restart("p")
    wait_for(lambda: pm.describe("p")[0].status == "online")
    pm.delete("p")
    assert target.read_text() == "precious\n"
    assert pid_file.is_symlink()  # not ours: left where it was


def test_a_pid_file_corral_created_is_rewritten_and_removed(pm, tmp_path):
    pid_file = tmp_path / "app-pid"
    pm.start(script(tmp_path), {"name": "p", "pid_file": str(pid_file)})
    first = pm.describe("p")[0].pid
    wait_for(lambda: pid_file.exists() and pid_file.read_text() == str(first))
    pm.restart("p")
    wait_for(lambda: pm.describe("p")[0].pid not in (None, first))
    wait_for(lambda: pid_file.read_text() == str(pm.describe("p")[0].pid))
    pm.delete("p")
    wait_for(lambda: not pid_file.exists())


def test_a_pid_file_of_an_app_run_as_a_user_is_created_as_that_user(app_user, pm, shared_dir):
    owned = shared_dir / "run"
    owned.mkdir()
    uid = pwd.getpwnam(app_user).pw_uid
    os.chown(owned, uid, -1)
    pid_file = owned / "app-pid"
    pm.start(
        script(shared_dir),
        {
            "name": "p",
            "uid": app_user,
            "cwd": str(shared_dir),
            "interpreter": PYTHON,
            "pid_file": str(pid_file),
        },
    )
    wait_for(lambda: pid_file.exists() and pid_file.read_text() == str(pm.describe("p")[0].pid))
    assert pid_file.stat().st_uid == uid


# -- out_file, error_file, log_file ------------------------------------------------------


@pytest.mark.parametrize("field", ["out_file", "error_file", "log_file"])
def test_a_log_the_app_user_cannot_open_is_refused(app_user, pm, shared_dir, field):
    target = victim(shared_dir)  # root's, 0600, in a directory the user can search
    message = refused(
        pm,
        field,
        target,
        lambda: pm.start(script(shared_dir), {"uid": app_user, field: str(target)}),
    )
    assert f"user {app_user}" in message
    assert target.read_text() == "precious\n"


@pytest.mark.parametrize("field", ["out_file", "error_file", "log_file"])
def test_a_log_that_is_a_link_is_refused(pm, tmp_path, field):
    target = victim(tmp_path)
    link = tmp_path / "app-log"  # no .log suffix: no -<pm_id> is added
    link.symlink_to(target)
    message = refused(
        pm, field, link, lambda: pm.start(script(tmp_path, CHATTY), {field: str(link)})
    )
    assert "symbolic link" in message
    assert target.read_text() == "precious\n"


def test_a_log_already_open_for_a_root_app_is_refused_to_a_user_app(app_user, pm, shared_dir):
    log = shared_dir / "root-app-out"
    pm.start(script(shared_dir), {"name": "rootapp", "out_file": str(log)})
    log.chmod(0o600)
    refused_start = lambda: pm.start(  # noqa: E731
        script(shared_dir), {"name": "userapp", "uid": app_user, "out_file": str(log)}
    )
    with pytest.raises(OptionError) as caught:
        refused_start()
    assert caught.value.field == "out_file"
    assert [p.name for p in pm.list()] == ["rootapp"]


def test_a_user_app_logs_in_its_own_files(app_user, pm, shared_dir):
    owned = shared_dir / "logs"
    owned.mkdir()
    uid = pwd.getpwnam(app_user).pw_uid
    os.chown(owned, uid, -1)
    out = owned / "deep" / "out"  # its directory too is made as the user
    pm.start(
        script(shared_dir),
        {
            "name": "u",
            "uid": app_user,
            "cwd": str(shared_dir),
            "interpreter": PYTHON,
            "out_file": str(out),
        },
    )
    wait_for(lambda: out.exists() and "started" in out.read_text())
    assert out.stat().st_uid == uid and out.parent.stat().st_uid == uid
    assert pm.flush("u") and out.read_text() == ""  # flush empties the app's own log


def test_opening_as_the_app_costs_little(app_user, tmp_path):
    """The measure quoted in docs/reliability.md (one open as another user)."""
    code = (
        "import os, time\n"
        "from corral.supervisor import asuser, credentials\n"
        f"c = credentials.resolve({{'uid': {app_user!r}}})\n"
        "p = '/tmp/' + str(os.getpid()) + '.asuser'\n"
        "flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW\n"
        "os.close(asuser.open_as(c, p, flags))\n"
        "t = time.perf_counter()\n"
        "for _ in range(500): os.close(asuser.open_as(c, p, flags))\n"
        "print((time.perf_counter() - t) / 500 * 1e6)\n"
        "os.unlink(p)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 2000  # microseconds; ~70 measured on 2 cores


def test_logrotate_compress_never_writes_through_a_planted_link(tmp_path):
    from corral.plugins.logrotate import compress

    target = victim(tmp_path)
    rotated = tmp_path / "app-out__2024-01-01_00-00-00.log"
    rotated.write_text("old lines\n")
    (tmp_path / f".{rotated.name}.gz.tmp").symlink_to(target)  # planted by the app's user
    gz = compress(rotated)
    assert target.read_text() == "precious\n"
    assert gz.exists() and not rotated.exists()


def test_the_next_daemon_takes_back_the_pid_file_of_an_app_it_recovers(corral_home, tmp_path):
    import corral
    from tests.faults.test_daemon_kill import sigkill_daemon

    pid_file = tmp_path / "app-pid"
    client = corral.connect()
    client.start(script(tmp_path), {"name": "p", "pid_file": str(pid_file)})
    first = client.describe("p")[0].pid
    wait_for(lambda: pid_file.exists() and pid_file.read_text() == str(first))
    wait_for(lambda: "pid_file_created" in (corral_home / "state.json").read_text())
    sigkill_daemon(client.daemon_pid)  # the file stays behind, still corral's
    again = corral.connect()
    try:
        wait_for(lambda: again.describe("p")[0].pid not in (None, first), timeout=30)
        wait_for(lambda: pid_file.read_text() == str(again.describe("p")[0].pid))
        again.delete("p")
        wait_for(lambda: not pid_file.exists())
    finally:
        again.kill_daemon()
        again.disconnect()


def test_a_pid_file_the_app_user_cannot_create_is_refused(app_user, pm, shared_dir):
    pid_file = shared_dir / "app-pid"  # root's 0755 directory: the user cannot write it
    message = refused(
        pm,
        "pid_file",
        pid_file,
        lambda: pm.start(script(shared_dir), {"uid": app_user, "pid_file": str(pid_file)}),
    )
    assert f"user {app_user}" in message
    assert not pid_file.exists()
