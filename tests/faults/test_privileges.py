"""Dropping privileges: an app given ``uid``/``gid`` runs as ``runuser`` would run it.

Real users and groups are made with ``useradd``/``groupadd`` for the module and
removed after. The daemon runs in this process with root's supplementary groups
set to ``{0, a root-only group}`` so that a leak of them shows. Each app writes
who it is (ids, groups, ``HOME``/``USER``/``LOGNAME``/``SHELL``) to a file in a
shared scratch directory, since the daemon's home is closed to other users.
Readiness by ``sd_notify`` is checked for an app of another user, and a process
of a third user cannot make any app ready.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import corral
from corral.errors import OptionError
from corral.testing import wait_for, wait_for_event

# the venv's python lives under /root (0700): apps of other users run the system's
PYTHON = "/usr/bin/python3"
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not os.access(PYTHON, os.X_OK),
    reason="needs root, useradd and /usr/bin/python3",
)

REPORT = """\
import json, os, sys, time
info = {
    "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
    "env": {k: os.environ.get(k) for k in ("HOME", "USER", "LOGNAME", "SHELL")},
}
try:
    with open(sys.argv[2]) as secret:
        info["secret"] = secret.read()
except OSError as exc:
    info["secret"] = exc.strerror
with open(sys.argv[1] + ".tmp", "w") as out:
    json.dump(info, out)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""

# sd_notify(3) by hand: "@name" is an abstract socket
NOTIFY = """\
import os, socket, sys, time
address = os.environ["NOTIFY_SOCKET"]
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(address)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
if sys.argv[2] == "notify":
    target = "\\0" + address[1:] if address.startswith("@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(target)
        sock.send(b"READY=1")
time.sleep(600)
"""

# run as a third user, outside corral: READY=1 as itself, then claiming the app's pid
FOREIGN = """\
import os, socket, struct, sys
address, app_pid = sys.argv[1], int(sys.argv[2])
target = "\\0" + address[1:] if address.startswith("@") else address
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
    sock.connect(target)
    sock.send(b"READY=1")
    forged = struct.pack("3i", app_pid, os.getuid(), os.getgid())
    try:
        sock.sendmsg([b"READY=1"], [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, forged)])
        print("forged")
    except PermissionError:
        print("refused")
"""


@dataclass(frozen=True)
class Accounts:
    user: str  # the app's user, also in group `extra`
    other: str  # a third user, who never runs an app
    extra: str  # a supplementary group of `user`
    override: str  # a group given as gid
    rootonly: str  # a group only the daemon is in
    scratch: Path  # world-writable, for the apps' reports

    def entry(self, name: str | None = None) -> pwd.struct_passwd:
        return pwd.getpwnam(name or self.user)

    def gid(self, group: str) -> int:
        return grp.getgrnam(group).gr_gid


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def accounts() -> Iterator[Accounts]:
    tag = f"corral-t-{secrets.token_hex(3)}"
    user, other = tag, f"{tag}-o"
    extra, override, rootonly = f"{tag}-x", f"{tag}-g", f"{tag}-r"
    scratch = Path(tempfile.mkdtemp(prefix="corral-priv-", dir="/tmp"))
    scratch.chmod(0o1777)
    made_groups: list[str] = []
    made_users: list[str] = []
    try:
        for group in (extra, override, rootonly):
            _run("groupadd", group)
            made_groups.append(group)
        _run("useradd", "-m", "-s", "/bin/bash", "-G", extra, user)
        made_users.append(user)
        _run("useradd", "-m", "-s", "/bin/sh", other)
        made_users.append(other)
        yield Accounts(user, other, extra, override, rootonly, scratch)
    finally:
        for name in made_users:
            subprocess.run(["userdel", "-r", name], capture_output=True, timeout=30)
        for group in made_groups:
            subprocess.run(["groupdel", group], capture_output=True, timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture
def root_groups(accounts: Accounts) -> Iterator[list[int]]:
    """This process (where the daemon runs) in groups 0 and `rootonly`, as root often is."""
    before = os.getgroups()
    groups = [0, accounts.gid(accounts.rootonly)]
    os.setgroups(groups)
    try:
        yield groups
    finally:
        os.setgroups(before)


@pytest.fixture
def secret(accounts: Accounts) -> Iterator[Path]:
    """A root-group file (root:root 0640), readable by the root group only."""
    path = accounts.scratch / f"secret-{secrets.token_hex(3)}"
    path.write_text("root group only")
    os.chown(path, 0, 0)
    path.chmod(0o640)
    yield path
    path.unlink()


def app(accounts: Accounts, name: str, source: str) -> str:
    path = accounts.scratch / f"{name}-{secrets.token_hex(3)}.py"
    path.write_text(source)
    path.chmod(0o644)
    return str(path)


def report_of(pm: corral.Client, accounts: Accounts, options: dict[str, Any], secret: Path):
    out = accounts.scratch / f"report-{secrets.token_hex(3)}.json"
    script = app(accounts, "report", REPORT)
    base = {"name": "report", "exec_interpreter": PYTHON, "cwd": str(accounts.scratch)}
    pm.start(script, {**base, **options, "args": [str(out), str(secret)]})
    wait_for(out.exists, 10, what="the app's report")
    return json.loads(out.read_text())


# -- who the app is ---------------------------------------------------------------------


def test_uid_alone_runs_as_the_user_with_its_groups_and_environment(
    corral_daemon, accounts: Accounts, root_groups: list[int], secret: Path
) -> None:
    pm = corral_daemon()
    me = accounts.entry()
    seen = report_of(pm, accounts, {"uid": accounts.user}, secret)
    assert (seen["uid"], seen["gid"]) == (me.pw_uid, me.pw_gid)
    assert seen["groups"] == sorted(os.getgrouplist(me.pw_name, me.pw_gid))
    assert accounts.gid(accounts.extra) in seen["groups"]
    assert not set(root_groups) & set(seen["groups"]), "root's groups leaked"
    assert seen["env"] == {
        "HOME": me.pw_dir,
        "USER": me.pw_name,
        "LOGNAME": me.pw_name,
        "SHELL": me.pw_shell,
    }
    assert seen["secret"] == "Permission denied"  # the root-group 0640 file


def test_uid_with_gid_takes_that_primary_group(
    corral_daemon, accounts: Accounts, root_groups: list[int], secret: Path
) -> None:
    pm = corral_daemon()
    me, override = accounts.entry(), accounts.gid(accounts.override)
    seen = report_of(pm, accounts, {"uid": me.pw_uid, "gid": accounts.override}, secret)
    assert (seen["uid"], seen["gid"]) == (me.pw_uid, override)
    assert set(seen["groups"]) == {override, *os.getgrouplist(me.pw_name, me.pw_gid)}
    assert not set(root_groups) & set(seen["groups"])
    assert seen["env"]["HOME"] == me.pw_dir and seen["env"]["USER"] == me.pw_name


def test_gid_alone_keeps_the_daemons_user_with_that_group_only(
    corral_daemon, accounts: Accounts, root_groups: list[int], secret: Path
) -> None:
    pm = corral_daemon()
    group = accounts.gid(accounts.override)
    seen = report_of(pm, accounts, {"gid": str(group)}, secret)
    assert (seen["uid"], seen["gid"], seen["groups"]) == (0, group, [group])


def test_an_explicit_env_wins_over_the_account(
    corral_daemon, accounts: Accounts, secret: Path
) -> None:
    pm = corral_daemon()
    env = {"HOME": str(accounts.scratch), "SHELL": None}
    seen = report_of(pm, accounts, {"uid": accounts.user, "env": env}, secret)
    assert seen["env"] == {
        "HOME": str(accounts.scratch),
        "USER": accounts.user,
        "LOGNAME": accounts.user,
        "SHELL": None,
    }


def test_a_uid_that_reads_a_root_group_file_is_refused(
    corral_daemon, accounts: Accounts, secret: Path
) -> None:
    """The issue's case: before, the app ran with gid 0 and read root-group files."""
    pm = corral_daemon()
    seen = report_of(pm, accounts, {"uid": accounts.user}, secret)
    assert seen["gid"] != 0 and 0 not in seen["groups"]
    assert seen["secret"] == "Permission denied"


@pytest.mark.parametrize(
    ("account", "field", "words"),
    [
        ({"uid": 64999}, "uid", "give gid too"),
        ({"uid": 4294967295, "gid": 64999}, "uid", "not a valid id"),
        ({"uid": "99999999999", "gid": 64999}, "uid", "not a valid id"),
        ({"gid": 4294967295}, "gid", "not a valid id"),
        ({"uid": "no-such-user-pd"}, "uid", "no user of that name"),
        ({"gid": "no-such-group-pd"}, "gid", "no group of that name"),
        ({"uid": "\u00b2"}, "uid", "no user of that name"),  # a digit to isdigit(), not to int()
    ],
    ids=[
        "no-passwd-entry",
        "uid-minus-one",
        "uid-too-big",
        "gid-minus-one",
        "name",
        "group",
        "superscript-two",
    ],
)
def test_an_account_that_cannot_be_used_starts_nothing(
    corral_daemon, accounts: Accounts, account: dict[str, Any], field: str, words: str
) -> None:
    """4294967295 is (uid_t)-1, "unchanged" to setreuid: it used to run the app as root."""
    pm = corral_daemon()
    script = app(accounts, "report", REPORT)
    options = {"name": "bad", "exec_interpreter": PYTHON, "args": ["/dev/null", "/dev/null"]}
    with pytest.raises(OptionError) as caught:
        pm.start(script, {**options, **account})
    assert caught.value.field == field and words in str(caught.value)
    assert "\n" not in str(caught.value)
    assert pm.list() == []


# -- sd_notify ---------------------------------------------------------------------------


def test_an_app_of_another_user_becomes_ready_by_sd_notify(
    corral_daemon, accounts: Accounts
) -> None:
    pm = corral_daemon()
    out = accounts.scratch / f"notify-{secrets.token_hex(3)}"
    options = {
        "name": "notified",
        "uid": accounts.user,
        "exec_interpreter": PYTHON,
        "wait_ready": True,
        "listen_timeout": 20000,
        "args": [str(out), "notify"],
    }
    started = time.monotonic()
    (info,) = pm.start(app(accounts, "notify", NOTIFY), options)
    elapsed = time.monotonic() - started
    assert info.status == "online"
    online = wait_for_event(pm, "online", "notified")
    assert online.reason == "sd_notify READY=1"
    assert elapsed < 10, f"start took {elapsed:.1f} s"
    assert out.read_text().startswith("@")  # the home is 0700: an abstract socket


def test_root_apps_keep_the_private_notify_socket(
    corral_daemon, accounts: Accounts, corral_home: Path
) -> None:
    pm = corral_daemon()
    out = accounts.scratch / f"notify-{secrets.token_hex(3)}"
    options = {"name": "rootapp", "exec_interpreter": PYTHON, "wait_ready": True}
    pm.start(app(accounts, "notify", NOTIFY), {**options, "args": [str(out), "notify"]})
    assert wait_for_event(pm, "online", "rootapp").reason == "sd_notify READY=1"
    assert out.read_text() == str(corral_home / "notify.sock")


def test_a_process_of_another_user_cannot_make_an_app_ready(
    corral_daemon, accounts: Accounts
) -> None:
    """The socket is reachable by every user (as systemd's /run/systemd/notify is); the
    kernel-checked sender pid decides, and a forged one is refused by the kernel."""
    pm = corral_daemon()
    out = accounts.scratch / f"notify-{secrets.token_hex(3)}"
    options = {
        "name": "waiting",
        "uid": accounts.user,
        "exec_interpreter": PYTHON,
        "wait_ready": True,
        "listen_timeout": 3000,
        "args": [str(out), "silent"],
    }
    script = app(accounts, "notify", NOTIFY)
    starting = threading.Thread(target=lambda: pm.start(script, options), daemon=True)
    starting.start()
    try:
        wait_for(out.exists, 10, what="the app's NOTIFY_SOCKET")
        (info,) = pm.describe("waiting")
        assert info.status == "launching"
        other = accounts.entry(accounts.other)
        foreign = subprocess.run(
            [PYTHON, "-c", FOREIGN, out.read_text(), str(info.pid)],
            user=other.pw_uid,
            group=other.pw_gid,
            extra_groups=[],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert foreign.returncode == 0, foreign.stderr  # it reached the socket
        assert foreign.stdout.split() == ["refused"]  # the kernel refuses a forged pid
        online = wait_for_event(pm, "online", "waiting")
        assert online.reason == "listen_timeout"
        assert pm.events.matching(reason="sd_notify") == []
    finally:
        starting.join(10)


@pytest.mark.skipif(not shutil.which("systemd-notify"), reason="no systemd-notify")
def test_systemd_notify_of_another_user_is_heard(corral_daemon, accounts: Accounts) -> None:
    """systemd's own tool takes the abstract ``@`` address (as sd_notify(3) says)."""
    pm = corral_daemon()
    script = Path(app(accounts, "notify", "#!/bin/bash\nsystemd-notify --ready\nexec sleep 600\n"))
    script.chmod(0o755)
    options = {"name": "tool", "uid": accounts.user, "wait_ready": True, "listen_timeout": 20000}
    pm.start(str(script), {**options, "exec_interpreter": "none"})
    assert wait_for_event(pm, "online", "tool").reason == "sd_notify READY=1"
