"""No descendant escapes its app: each child runs in a cgroup of its own.

An app forks three grandchildren that leave everything a process-group stop
relies on: one calls ``setsid``, one ``setpgid``, and one clears its
environment and double-forks into a session of its own (no ``unique_id`` to
find it by, no parent, no group). None of them survives ``stop``, ``delete``,
``restart``, ``kill_daemon``, or a daemon killed with SIGKILL and replaced by
the next ``connect()``; the per-home parent cgroup is gone after
``kill_daemon``. Every grandchild writes its own pid to a file, so the test
knows them all; they are checked by pid with psutil, and every process that
carries the record's path in its command line is one of the app's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

import corral
from corral.supervisor import cgroup, cgroup_home
from tests.conftest import kill_pids, python_app, wait_for
from tests.core.test_daemon import alive, reap


def _writable() -> bool:
    """Whether this process can make a cgroup below its own and move into it and back."""
    start = cgroup.origin()
    if start is None:
        return False
    probe = start / f"corral-test-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        for target in (probe, start):
            (target / "cgroup.procs").write_text("0")
    except OSError:
        return False
    finally:
        probe.rmdir()
    return True


pytestmark = pytest.mark.skipif(
    not _writable(), reason="needs a writable cgroup v2 hierarchy (root or a delegated subtree)"
)

KILL_TIMEOUT_MS = 500

# the env-less double fork: a new session, parent gone, no unique_id in its environment
BARE = """\
import os, signal, sys, time
if os.fork():
    os.wait()
    sys.exit(0)
os.setsid()
if os.fork():
    os._exit(0)
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
with open(sys.argv[1], "a") as f:
    f.write(f"bare {os.getpid()}\\n")
while True:
    time.sleep(3600)
"""

FAMILY = f"""\
import os, signal, subprocess, sys, time

record, mode = sys.argv[1], sys.argv[2]
BARE = {BARE!r}


def stay(kind):
    try:
        if kind == "setsid":
            os.setsid()
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # deaf: SIGKILL only
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        else:
            os.setpgid(0, 0)
        with open(record, "a") as f:
            f.write(f"{{kind}} {{os.getpid()}}\\n")
        while True:
            time.sleep(3600)
    finally:
        os._exit(0)


def count():
    try:
        return len(open(record).read().splitlines())
    except FileNotFoundError:
        return 0


if mode == "crash-once" and os.path.exists(record):
    mode = "quiet"  # the restarted child: no family of its own
if mode != "quiet":
    before = count()
    for kind in ("setsid", "setpgid"):
        if os.fork() == 0:
            stay(kind)
    subprocess.run([sys.executable, "-c", BARE, record], env={{}}, check=True)
    while count() < before + 3:
        time.sleep(0.01)
print("family", flush=True)
if mode == "crash-once":
    sys.exit(1)
while True:
    time.sleep(3600)
"""

KINDS = ("setsid", "setpgid", "bare")


def family(record: Path, generation: int = 0) -> dict[str, int]:
    """``{kind: pid}`` of the ``generation``-th family, once all three wrote their pids."""

    def read() -> dict[str, int] | None:
        try:
            lines = record.read_text().splitlines()
        except FileNotFoundError:
            return None
        mine = lines[3 * generation : 3 * generation + 3]
        found = {kind: int(pid) for kind, pid in (line.split() for line in mine)}
        return found if len(found) == 3 else None

    return wait_for(read, what=f"family {generation} recorded")


def carrying(token: str) -> set[int]:
    """Live pids with ``token`` in their command line (the env-less one keeps no marker)."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if token in " ".join(proc.info["cmdline"] or ()) and alive(proc.pid):
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


def gone(pids: dict[str, int]) -> bool:
    return not any(alive(pid) for pid in pids.values())


def left(pids: dict[str, int]) -> dict[str, int]:
    return {kind: pid for kind, pid in pids.items() if alive(pid)}


def parent_of(home: Path) -> Path:
    """The per-home parent cgroup of a daemon started from this process's cgroup."""
    start = cgroup.origin()
    assert start is not None
    return start / cgroup.parent_name(home)


def start_family(client: corral.Client, tmp_path: Path, mode: str = "stay", **options: object):
    record = tmp_path / "family.txt"
    script = python_app(tmp_path, "family.py", FAMILY)
    settings = {"name": "family", "args": [str(record), mode], "kill_timeout": KILL_TIMEOUT_MS}
    info = client.start(script, {**settings, **options})[0]
    return info, record


@pytest.fixture
def strays():
    """Pids a test learns of, SIGKILLed at teardown if the daemon missed them."""
    found: list[int] = []
    yield found
    kill_pids([pid for pid in found if alive(pid)])


@pytest.mark.parametrize("action", ["stop", "delete", "restart", "kill_daemon"])
def test_no_descendant_escapes(corral_home: Path, tmp_path: Path, action: str, strays) -> None:
    client = corral.connect()
    info, record = start_family(client, tmp_path)
    first = family(record)
    strays.extend(first.values())
    try:
        assert all(alive(pid) for pid in first.values())
        if action == "kill_daemon":
            client.kill_daemon()
        else:
            getattr(client, action)("family")
        # a stop returns once the cgroup is empty; a grace for init to reap the zombies
        wait_for(
            lambda: gone(first),
            timeout=5,
            what=f"no grandchild after {action} (left as it returned: {left(first)})",
        )
        if action == "restart":
            again = client.describe("family")[0]
            assert again.status == "online" and again.pid != info.pid
            strays.extend(family(record, 1).values())
        if action == "kill_daemon":
            assert not parent_of(corral_home).exists()
            assert not (corral_home / "cgroup.path").exists()
    finally:
        if action != "kill_daemon":
            client.kill_daemon()
            assert not parent_of(corral_home).exists()


def test_each_child_has_a_cgroup_of_its_own(corral_home: Path, tmp_path: Path, strays) -> None:
    """The child and its whole family share one cgroup, below the home's parent (recorded in
    the home), and a restart's new child gets a new one; the old one is removed."""
    client = corral.connect()
    try:
        info, record = start_family(client, tmp_path)
        first = family(record)
        strays.extend(first.values())
        where = {cgroup.own_path(pid) for pid in (info.pid, *first.values())}
        assert len(where) == 1, where
        parent = parent_of(corral_home)
        assert (corral_home / "cgroup.path").read_text() == str(parent)
        mount = cgroup.v2_mount()
        assert mount is not None
        own = cgroup.locate(where.pop(), mount)
        assert own is not None and own.parent == parent
        # the middle processes of the double fork exit right after the family is recorded
        expected = sorted([info.pid, *first.values()])
        wait_for(lambda: sorted(cgroup.pids(own)) == expected, what=f"{expected} in {own}")
        (again,) = client.restart("family")
        strays.extend(family(record, 1).values())
        assert cgroup.own_path(again.pid) != cgroup.own_path(info.pid)
        wait_for(lambda: not own.exists(), what="the stopped child's cgroup removed")
    finally:
        client.kill_daemon()


@pytest.mark.parametrize("autorestart", [False, True], ids=["exited", "crashed-restarted"])
def test_an_exited_childs_family_is_reached_by_the_next_stop(
    corral_home: Path, tmp_path: Path, autorestart: bool, strays
) -> None:
    """The main process exits; its family, in the cgroup of the child that made it, goes
    with the next stop, or, when the policy restarts it, before that restart (as systemd
    does; a crash loop must not pile them up)."""
    client = corral.connect()
    info, record = start_family(client, tmp_path, "crash-once", autorestart=autorestart)
    first = family(record)
    strays.extend(first.values())
    try:
        if autorestart:
            wait_for(lambda: client.describe("family")[0].restart_time == 1, what="restarted")
            wait_for(lambda: gone(first), timeout=5, what="the exited run's family ended")
            assert not alive(info.pid)
            return
        wait_for(lambda: client.describe("family")[0].status == "stopped", what="exited")
        assert not alive(info.pid) and all(alive(pid) for pid in first.values())
        client.stop("family")
        wait_for(
            lambda: gone(first),
            timeout=5,
            what=f"no grandchild after stop (left as it returned: {left(first)})",
        )
    finally:
        client.kill_daemon()


def test_a_dead_daemons_descendants_end_with_the_next_connect(
    corral_home: Path, tmp_path: Path, strays
) -> None:
    client = corral.connect()
    info, record = start_family(client, tmp_path)
    first = family(record)
    strays.extend([info.pid, *first.values()])
    old = client.daemon_pid
    token = str(record)
    wait_for(
        lambda: carrying(token) == {info.pid, *first.values()}, what="the app's four processes"
    )
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: (reap(old), not alive(old))[1], what=f"daemon {old} gone")
    assert all(alive(pid) for pid in (info.pid, *first.values()))

    again = corral.connect()
    try:
        assert again.daemon_pid != old
        second = family(record, 1)
        strays.extend(second.values())
        wait_for(lambda: gone({"main": info.pid, **first}), timeout=5, what="the old family gone")
        back = again.describe("family")[0]
        assert back.status == "online" and back.pid != info.pid
        strays.append(back.pid)
        # exactly the configured app: one main process and its one new family
        wait_for(
            lambda: carrying(token) == {back.pid, *second.values()},
            what=f"only the new family (old left: {left({'main': info.pid, **first})})",
        )
    finally:
        again.kill_daemon()
    assert not parent_of(corral_home).exists()


def test_freeze_and_kill_where_there_is_no_cgroup_kill(tmp_path: Path) -> None:
    """The path for kernels before 5.14: a tree that forks all the time is frozen, then
    SIGKILLed pid by pid, and nothing is left."""
    cgroups = cgroup_home.Cgroups.open(tmp_path)
    assert cgroups is not None
    forker = "import os, time\nwhile True:\n    os.fork() or time.sleep(60)\n    time.sleep(0.01)\n"
    try:
        with cgroups.born_in("forker") as where:
            proc = subprocess.Popen([sys.executable, "-c", forker], start_new_session=True)
        wait_for(lambda: len(cgroup.pids(where)) > 5, what="a growing tree")
        cgroup.kill_all(where, via_freeze=True)
        wait_for(lambda: not cgroup.populated(where), timeout=5, what="the cgroup empty")
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        asyncio.run(cgroup.sweep(where))
        proc.kill()
        proc.wait()
        cgroups.close()
    assert not cgroups.parent.exists()


def test_a_process_forked_beside_a_spawn_never_shares_the_childs_cgroup(tmp_path: Path) -> None:
    """Between forks the daemon waits in its nursery cgroup, so what another of its threads
    forks meanwhile starts there: it goes back to the daemon's own cgroup before the next
    child is born, and the child's cgroup holds the child alone."""
    cgroups = cgroup_home.Cgroups.open(tmp_path)  # this process now waits in the nursery
    assert cgroups is not None
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(["sleep", "60"]))  # as a plugin's thread would
        stranger = started[0].pid
        assert cgroup.own_path(stranger) == cgroup.own_path("self")
        with cgroups.born_in("app") as where:
            started.append(subprocess.Popen(["sleep", "60"], start_new_session=True))
        child = started[1].pid
        wait_for(lambda: cgroup.pids(where) == [child], what=f"{where} holds the child alone")
        mount = cgroup.v2_mount()
        assert mount is not None
        assert cgroup.locate(cgroup.own_path(stranger), mount) == cgroups.origin
        # the mover takes this process out on its own thread: /proc/self/cgroup can lag
        # cgroup.procs under load (seen once in CI), so its side is awaited too
        wait_for(lambda: not cgroup.inside(where), what=f"this process out of {where}")
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
        cgroups.close()
    assert not cgroups.parent.exists()


def test_a_daemon_that_cannot_make_cgroups_keeps_todays_method(tmp_path: Path) -> None:
    """A process of another user below a cgroup it cannot write (root's) gets no cgroups, and
    nothing is created: its daemon stops trees by process group and the /proc scan."""
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)  # nobody (no Python of root's is open to it: fork, drop)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, repr(cgroup_home.Cgroups.open(home)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        said = answer.read()
    os.waitpid(pid, 0)
    assert said == "None"
    assert not parent_of(home).exists() and not (home / "cgroup.path").exists()


def test_a_daemon_that_fails_at_its_start_leaves_no_cgroup(tmp_path: Path) -> None:
    """The detached daemon makes its cgroups on a thread while it imports; one that then
    fails (a corral.yaml it refuses) removes them and their record as it exits."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "corral.yaml").write_text("no_such_setting: 1\n")
    env = dict(os.environ, CORRAL_HOME=str(home))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "corral.daemon.main"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert "no_such_setting" in done.stderr
        assert not parent_of(home).exists()
        assert not (home / cgroup_home.RECORD).exists()
    finally:
        holder = home / "fdholder.pid"
        if holder.exists():
            kill_pids([int(holder.read_text())])
