"""A hostile tester's findings against a root daemon: each test failed before its fix.

The attacker is a local user whose app a root daemon runs (``uid``), or a config file
a root user starts. Victims are root-owned 0600 files in temporary directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

import corral
from corral.errors import OptionError
from corral.plugins import logrotate
from corral.testing import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a root daemon is the subject")

PYTHON = "/usr/bin/python3"
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"


def script(directory: Path, source: str = SLEEPER) -> str:
    path = directory / "app.py"
    path.write_text(source)
    path.chmod(0o644)
    return str(path)


def user_dir(parent: Path, user: str) -> Path:
    """A directory the app's user owns (its own log directory)."""
    path = parent / "userdir"
    path.mkdir()
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def client_call(corral_home: Path, code: str, timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    return subprocess.run(
        [sys.executable, "-c", f"import corral\npm = corral.connect()\n{code}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_fifo_swapped_for_a_user_apps_log_does_not_hang_the_daemon(
    app_user, shared_dir, corral_home, with_logrotate, pm
):
    """The app's user replaces its own log with a fifo nobody reads; root's daemon then
    reopens it (``reload_logs``, logrotate's rotation): an open O_WRONLY of a fifo blocks
    until a reader comes, so the whole daemon (every user's apps) hung for ever."""
    logs = user_dir(shared_dir, app_user)
    out = logs / "out.log"
    pm.start(
        script(shared_dir),
        {"name": "u", "uid": app_user, "out_file": str(out), "interpreter": PYTHON},
    )
    wait_for(lambda: out.exists() and b"started" in out.read_bytes())
    pw = pwd.getpwnam(app_user)
    out.rename(logs / "out.old")  # what the user may do in its own directory
    os.mkfifo(out, 0o600)
    os.chown(out, pw.pw_uid, pw.pw_gid)
    try:
        try:
            done = client_call(corral_home, "pm.reload_logs()\nprint(pm.ping()['pid'])", 20)
        except subprocess.TimeoutExpired:
            pytest.fail("reload_logs of a log swapped for a fifo hung the daemon")
        assert done.returncode == 0, done.stderr
        assert pm.ping()["pid"]
        assert pm.list()[0].status == "online"
    finally:
        # a daemon blocked in open() is released by a reader, so teardown can stop it
        fd = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
        wait_for(lambda: pm.ping() is not None, timeout=10)
        os.close(fd)


def root_only_log(directory: Path) -> Path:
    """A log a root app was given: root's 0600 file the app's new user could not open."""
    path = directory / "root-only.log"
    path.write_text("")
    path.chmod(0o600)
    return path


def test_a_restart_that_changes_uid_does_not_keep_a_log_the_user_cannot_open(
    app_user, shared_dir, corral_home, pm
):
    """Logs are opened once, at creation, as the account of that time: a restart with
    ``uid`` then ran the user's app with its output in root's 0600 file (and ``flush``
    truncated it for that app). Now refused, one line naming the log; nothing changes."""
    log = root_only_log(shared_dir)
    pm.start(script(shared_dir), {"name": "r", "out_file": str(log), "interpreter": PYTHON})
    wait_for(lambda: b"started" in log.read_bytes())
    with pytest.raises(OptionError) as caught:
        pm.restart("r", options={"uid": app_user})
    assert str(log) in str(caught.value) and app_user in str(caught.value), caught.value
    (info,) = pm.list()
    assert info.options.get("uid") is None
    assert psutil.Process(info.pid).uids().real == 0
    assert log.read_bytes().count(b"started") == 1


def test_a_config_started_again_with_uid_does_not_keep_a_log_the_user_cannot_open(
    app_user, shared_dir, corral_home, pm
):
    """``corral start ecosystem`` again, now with ``uid``, restarts the app with the
    new options: the same check as ``restart``."""
    log = root_only_log(shared_dir)
    app = script(shared_dir)
    config = shared_dir / "eco.json"
    entry = {"name": "c", "script": app, "out_file": str(log), "interpreter": PYTHON}
    config.write_text(json.dumps({"apps": [entry]}))
    pm.start(str(config))
    wait_for(lambda: b"started" in log.read_bytes())
    config.write_text(json.dumps({"apps": [{**entry, "uid": app_user}]}))
    with pytest.raises(OptionError) as caught:
        pm.start(str(config))
    assert str(log) in str(caught.value), caught.value
    (info,) = pm.list()
    assert psutil.Process(info.pid).uids().real == 0
    assert log.read_bytes().count(b"started") == 1


def test_describe_masks_a_secret_given_as_the_argument_after_its_flag(shared_dir, corral_home, pm):
    """``--password=x`` was masked but ``--password x`` (two arguments, the form most
    command lines take) was shown in clear by ``corral describe``."""
    args = ["--password", "hunter2", "--api-key", "sk-live-9", "--db-token=tok-77", "--port", "80"]
    pm.start(script(shared_dir), {"name": "a", "args": args, "interpreter": PYTHON})
    env = dict(os.environ, CORRAL_HOME=str(corral_home), COLUMNS="200")
    run = [sys.executable, "-m", "corral", "describe", "a"]
    shown = subprocess.run(run, env=env, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    for secret in ("hunter2", "sk-live-9", "tok-77"):
        assert secret not in shown.stdout, shown.stdout
    assert "--password ****" in shown.stdout and "--port 80" in shown.stdout, shown.stdout
    revealed = subprocess.run([*run, "--show-secrets"], env=env, capture_output=True, text=True)
    assert "--password hunter2" in revealed.stdout, revealed.stdout
    # a command line given as the script: its words are its arguments
    pm.start("sleep 30 --password hunter5", {"name": "c"})
    shown = subprocess.run([*run[:-1], "c"], env=env, capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert "hunter5" not in shown.stdout and "--password ****" in shown.stdout, shown.stdout


def test_logrotate_flush_never_deletes_through_a_directory_the_user_swapped(
    app_user, shared_dir, corral_home
):
    """The app's user owns its log directory, so it can replace it with a symbolic link
    to any directory; ``logrotate flush --all`` then listed and deleted, as root, the
    files there named like rotated logs (``x__*.log``): root's files the user could not."""
    logs = user_dir(shared_dir, app_user)
    (logs / "l").mkdir()
    pw = pwd.getpwnam(app_user)
    os.chown(logs / "l", pw.pw_uid, pw.pw_gid)
    out = logs / "l" / "x.log"
    with corral.connect(no_daemon=True, plugins=[logrotate]) as pm:
        swap_and_flush(pm, app_user, shared_dir, logs, out)


def swap_and_flush(pm, app_user: str, shared_dir: Path, logs: Path, out: Path) -> None:
    pw = pwd.getpwnam(app_user)
    pm.start(
        script(shared_dir),
        {"name": "u", "uid": app_user, "out_file": str(out), "interpreter": PYTHON},
    )
    wait_for(lambda: out.exists() and b"started" in out.read_bytes())
    vault = shared_dir / "vault"
    vault.mkdir(mode=0o700)
    precious = vault / "x__2020-01-01.log"
    precious.write_text("precious\n")
    precious.chmod(0o600)
    (logs / "l").rename(logs / "l.old")  # all the user's to do, in its own directory
    (logs / "l").symlink_to(vault)
    os.lchown(logs / "l", pw.pw_uid, pw.pw_gid)
    pm.call("logrotate_flush", target="u", all=True)
    assert precious.read_text() == "precious\n"


def test_a_user_apps_rotated_logs_are_handled_as_that_user(app_user, shared_dir, corral_home):
    """gzip and retention run with the app's rights in the app's directory: the ``.gz``
    belongs to the app's user (it was root's, in the user's directory)."""
    logs = user_dir(shared_dir, app_user)
    out = logs / "x.log"
    with corral.connect(no_daemon=True, plugins=[logrotate]) as pm:
        pm.call("logrotate_set", key="compress", value=True)
        pm.start(
            script(shared_dir),
            {"name": "u", "uid": app_user, "out_file": str(out), "interpreter": PYTHON},
        )
        wait_for(lambda: out.exists() and b"started" in out.read_bytes())
        (done,) = pm.call("logrotate_rotate", target="u")
        gz = Path(done["rotated"])
        assert gz.suffix == ".gz" and gz.parent == logs, done
        assert gz.stat().st_uid == pwd.getpwnam(app_user).pw_uid


# -- listen: unix:/path ---------------------------------------------------------------


def test_a_user_app_gets_no_socket_where_its_user_could_not_make_one(
    app_user, shared_dir, corral_home, pm
):
    """``listen: unix:/path`` was bound by the root daemon: an app with ``uid`` got a
    socket in a directory only root can write (``/run/...``) and root's socket file there."""
    vault = shared_dir / "vault"
    vault.mkdir(mode=0o755)  # root's, like /run: others may enter, not create
    where = vault / "app.sock"
    with pytest.raises(OptionError) as caught:
        pm.start(
            script(shared_dir),
            {"name": "s", "uid": app_user, "listen": f"unix:{where}", "interpreter": PYTHON},
        )
    assert caught.value.field == "listen", caught.value
    assert not os.path.lexists(where)
    assert pm.list() == [] or all(p.status != "online" for p in pm.list())


def test_a_live_socket_of_another_service_is_neither_deleted_nor_taken(shared_dir, corral_home, pm):
    """A socket file was unlinked whenever one was there, on the guess it was stale: a
    config naming ``/run/dbus/system_bus_socket`` took the bus from its service. Now a
    socket someone listens on is left alone (the start fails: address in use)."""
    where = shared_dir / "service.sock"
    service = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        service.bind(str(where))
        service.listen(8)
        before = os.lstat(where).st_ino
        with pytest.raises(OptionError) as caught:
            pm.start(
                script(shared_dir), {"name": "h", "listen": f"unix:{where}", "interpreter": PYTHON}
            )
        assert caught.value.field == "listen", caught.value
        assert os.lstat(where).st_ino == before
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(where))  # still the service's
    finally:
        service.close()


def test_a_stale_socket_is_still_replaced(shared_dir, corral_home, pm):
    """A socket file nobody listens on (a previous run's) is replaced, as before."""
    where = shared_dir / "stale.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(where))
    stale.close()
    pm.start(script(shared_dir), {"name": "st", "listen": f"unix:{where}", "interpreter": PYTHON})
    wait_for(lambda: pm.list()[0].status == "online")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(where))


# -- a hand-edited dump ------------------------------------------------------------


def test_a_dump_edited_to_name_a_victim_pid_file_writes_nothing_there(
    app_user, shared_dir, corral_home, pm
):
    """``resurrect`` goes through the checks of ``start``: a dump whose app now names a
    victim as its ``pid_file``, or a log the app's user cannot open, touches neither
    (guard: it held before)."""
    pm.start(script(shared_dir), {"name": "d", "interpreter": PYTHON})
    pm.dump()
    pm.kill_daemon()
    victim = shared_dir / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    dump = corral_home / "dump.corral"
    data = json.loads(dump.read_text())
    data["apps"][0]["options"].update(pid_file=str(victim))
    dump.write_text(json.dumps(data))
    again = corral.connect()  # a new daemon
    assert again.resurrect() == []  # refused, and said in corral.log
    data["apps"][0]["options"].update(pid_file=None, out_file=str(victim), uid=app_user)
    dump.write_text(json.dumps(data))
    assert again.resurrect() == []  # refused, and said in corral.log
    assert victim.read_text() == "precious\n"
    assert all(p.status != "online" for p in again.list())
    said = (corral_home / "corral.log").read_text()
    assert "cannot restore app" in said and "pid_file" in said and "out_file" in said
    again.kill_daemon()
    again.disconnect()


# -- corral logs, run by root on a user's files ---------------------------------------


def test_corral_logs_reads_no_fifo_nor_link_the_app_user_put_in_its_place(
    app_user, shared_dir, corral_home, pm
):
    """``corral logs`` (and ``monit``) read a ``uid`` app's log paths as root, the
    caller: the app's user could put a fifo there (root's ``corral logs`` hung in
    open()), or a link to a file only root may read (shown), or to ``/dev/zero``
    (``-f`` read it for ever). Only regular files, never through a link, are read."""
    logs = user_dir(shared_dir, app_user)
    out = logs / "out.log"
    pm.start(
        script(shared_dir),
        {"name": "u", "uid": app_user, "out_file": str(out), "interpreter": PYTHON},
    )
    wait_for(lambda: out.exists() and b"started" in out.read_bytes())
    pw = pwd.getpwnam(app_user)
    out.rename(logs / "out.old")
    os.mkfifo(out, 0o600)
    os.chown(out, pw.pw_uid, pw.pw_gid)
    env = dict(os.environ, CORRAL_HOME=str(corral_home))
    run = [
        sys.executable,
        "-m",
        "corral",
        "logs",
        "u",
        "--nostream",
        "--lines",
        "5",
        "--raw",
        "--out",
    ]
    try:
        shown = subprocess.run(run, env=env, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("corral logs hung on a fifo the app's user put in place of its log")
    finally:
        out.unlink()
    assert shown.returncode == 0, shown.stderr
    vault = shared_dir / "vault"
    vault.mkdir(mode=0o700)
    (vault / "secret").write_text("root-only-words\n")
    (vault / "secret").chmod(0o600)
    out.symlink_to(vault / "secret")
    os.lchown(out, pw.pw_uid, pw.pw_gid)
    shown = subprocess.run(run, env=env, capture_output=True, text=True, timeout=20)
    assert shown.returncode == 0, shown.stderr
    assert "root-only-words" not in shown.stdout


# -- corral startup, root writing a user-level unit into someone's home -------------------


def test_startup_for_a_user_never_writes_through_a_link_that_user_planted(app_user):
    """``sudo corral startup systemd --user-mode -u USER`` writes the unit into USER's
    home as root: USER could plant a link at the temporary file's name, and root then
    wrote the unit into the link's target, chmod-ed it 0644 and gave it to USER
    (``/etc/shadow`` owned by USER). Now every step is done with USER's rights."""
    from corral.plugins.startup import StartupScript, install

    pw = pwd.getpwnam(app_user)
    home = Path(pw.pw_dir)
    units = home / ".config" / "systemd" / "user"
    vault = Path(tempfile.mkdtemp(prefix="corral-vault-", dir="/tmp"))
    try:
        victim = vault / "shadow"
        victim.write_text("root:precious\n")
        victim.chmod(0o600)
        # the user, in its own home, before root runs startup
        subprocess.run(
            [
                "runuser",
                "-u",
                app_user,
                "--",
                "sh",
                "-c",
                f"mkdir -p {units} && ln -s {victim} {units}/.corral.service.tmp",
            ],
            check=True,
        )
        unit = StartupScript("systemd", units / "corral.service", "[Unit]\n", mode=0o644)
        with contextlib.suppress(Exception):
            install(unit, owner=(pw.pw_uid, pw.pw_gid), run=lambda argv: None, enable=False)
        st = os.stat(victim)
        assert victim.read_text() == "root:precious\n"
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)
        written = units / "corral.service"
        assert written.read_text() == "[Unit]\n" and not written.is_symlink()
        assert written.stat().st_uid == pw.pw_uid
    finally:
        subprocess.run(["rm", "-rf", str(vault)], check=False)
