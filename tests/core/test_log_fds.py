"""Log files hold a descriptor only while written: opened on the first write, at most
``max_open`` at once (the least recently written closed first), closed when idle, and
reopened by path on the next write; on real files, and in real daemons (/proc/PID/fd)."""

from __future__ import annotations

import errno
import json
import os
import pwd
import resource
import secrets
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import corral
from corral.daemon.limits import FDS_PER_INSTANCE
from corral.supervisor import logfile
from corral.supervisor.logs import LineWriter, LogFiles
from corral.testing import wait_for


@pytest.fixture
def files():
    registry = LogFiles()
    registry.max_open = 3
    yield registry
    registry.close_all()


def non_files(pid: int) -> int:
    """How many pipes, sockets and anonymous inodes (pidfds) process ``pid`` holds: what
    an app costs the daemon, without the files a thread opens for a moment (a
    ``cgroup.procs`` the cgroup mover writes, a state file being replaced)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += not os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/")
        except OSError:
            continue
    return count


def open_under(where: Path, pid: int | str = "self") -> list[str]:
    """The files under ``where`` that process ``pid`` holds open."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(f"{where}/"):
            found.append(target)
    return found


# -- the registry, on real files -----------------------------------------------


def test_a_file_opens_on_its_first_write_and_the_least_recent_closes_past_the_bound(
    tmp_path, files
):
    paths = [tmp_path / f"app{i}.log" for i in range(10)]
    writers = [LineWriter([files.acquire(p)]) for p in paths]
    assert all(p.exists() for p in paths)  # made (and checked) when acquired, then closed
    assert files.open_count() == 0 and open_under(tmp_path) == []

    for n in range(50):
        for i, writer in enumerate(writers):
            writer.feed(f"{i} {n} ".encode())  # a partial line, written, then evicted
            writer.flush()
            writer.feed(b"end\n")
            assert files.open_count() <= 3 and len(open_under(tmp_path)) <= 3

    for i, path in enumerate(paths):
        assert path.read_text().splitlines() == [f"{i} {n} end" for n in range(50)]
    assert len(open_under(tmp_path)) == 3


def test_a_line_left_open_by_an_evicted_file_is_continued_and_another_writer_breaks_it(
    tmp_path, files
):
    shared = files.acquire(tmp_path / "shared.log")
    out, err = LineWriter([shared]), LineWriter([shared])
    others = [LineWriter([files.acquire(tmp_path / f"o{i}.log")]) for i in range(3)]
    out.feed(b"progress 10%")
    out.flush()
    for writer in others:  # shared.log is evicted
        writer.feed(b"x\n")
    assert not shared.is_open
    out.feed(b" 20%\n")
    out.feed(b"half")
    out.flush()
    for writer in others:
        writer.feed(b"y\n")
    err.feed(b"an error\n")  # another writer: the open line ends first
    assert (tmp_path / "shared.log").read_bytes() == b"progress 10% 20%\nhalf\nan error\n"


def test_a_line_another_program_left_open_while_the_file_was_closed_is_ended_first(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    others = [LineWriter([files.acquire(tmp_path / f"o{i}.log")]) for i in range(3)]
    writer.feed(b"ours\n")
    for other in others:
        other.feed(b"x\n")
    with open(path, "ab") as outsider:  # appended while corral held no descriptor
        outsider.write(b"theirs, unfinished")
    writer.feed(b"ours again\n")
    assert path.read_bytes() == b"ours\ntheirs, unfinished\nours again\n"


def test_merged_and_dated_lines_stay_whole_through_evictions(tmp_path, files):
    files.max_open = 2
    combined = files.acquire(tmp_path / "app.log")
    out = LineWriter([files.acquire(tmp_path / "out.log"), combined], date_format="YYYY")
    err = LineWriter([files.acquire(tmp_path / "err.log"), combined], date_format="YYYY")
    year = time.strftime("%Y")
    for n in range(20):
        out.feed(f"o{n} ".encode())
        out.flush()  # open in out.log and app.log, both closed before it ends
        err.feed(f"e{n}\n".encode())  # ends out's line in app.log first
        out.feed(b"end\n")
        assert files.open_count() <= 2
    assert (tmp_path / "out.log").read_text().splitlines() == [
        f"{year}: o{n} end" for n in range(20)
    ]
    assert (tmp_path / "err.log").read_text().splitlines() == [f"{year}: e{n}" for n in range(20)]
    merged = (tmp_path / "app.log").read_text().splitlines()
    # out's line is ended by err's in the merged file; its end is a line of its own there
    rounds = [(f"{year}: o{n} ", f"{year}: e{n}", f"{year}: end") for n in range(20)]
    assert merged == [line for three in rounds for line in three]


def test_rotation_flush_and_reload_work_on_an_evicted_file(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    others = [LineWriter([files.acquire(tmp_path / f"o{i}.log")]) for i in range(3)]
    writer.feed(b"one\n")
    for other in others:
        other.feed(b"x\n")
    assert not files.get(path).is_open
    os.rename(path, tmp_path / "a.log.1")  # logrotate's mv, while it is closed
    assert path in files.reopen_all()
    writer.feed(b"two\n")
    assert (tmp_path / "a.log.1").read_bytes() == b"one\n" and path.read_bytes() == b"two\n"

    for other in others:
        other.feed(b"x\n")
    assert files.truncate(path) and path.read_bytes() == b""  # flush: opened to be emptied
    writer.feed(b"three\n")
    assert path.read_bytes() == b"three\n"


def test_files_not_written_for_a_sweep_are_closed(tmp_path, files):
    quiet, busy = files.acquire(tmp_path / "quiet.log"), files.acquire(tmp_path / "busy.log")
    quiet.write(b"once\n")
    busy.write(b"1\n")
    assert files.close_idle() == 0  # both written since the last sweep
    busy.write(b"2\n")
    assert files.close_idle() == 1 and not quiet.is_open and busy.is_open
    assert files.close_idle() == 1 and files.open_count() == 0 and open_under(tmp_path) == []
    quiet.write(b"again\n")
    assert (tmp_path / "quiet.log").read_bytes() == b"once\nagain\n"


def test_a_file_that_cannot_be_reopened_drops_lines_and_says_so_once(tmp_path, files, monkeypatch):
    monkeypatch.setattr(logfile, "OPEN_RETRY", 0.0)
    failed, resumed = [], []
    files.on_error = lambda log, exc: failed.append(exc.errno)
    files.on_resume = lambda log, lines, nbytes, seconds: resumed.append((lines, nbytes))
    log = files.acquire(tmp_path / "dir" / "a.log")
    others = [files.acquire(tmp_path / f"o{i}.log") for i in range(3)]
    log.write(b"kept\n")
    for other in others:
        other.write(b"x\n")
    os.rename(tmp_path / "dir", tmp_path / "away")
    for _ in range(5):
        log.write(b"lost\n")
    assert failed == [errno.ENOENT] and (log.dropped_lines, log.dropped) == (5, 25)
    os.rename(tmp_path / "away", tmp_path / "dir")
    log.write(b"back\n")
    assert resumed == [(5, 25)] and failed == [errno.ENOENT]
    assert (tmp_path / "dir" / "a.log").read_bytes() == b"kept\nback\n"


def test_out_of_descriptors_the_registry_closes_files_rather_than_drop_lines(tmp_path):
    # a real, low RLIMIT_NOFILE, in a process of its own
    script = textwrap.dedent(
        f"""
        import os, resource
        from pathlib import Path
        from corral.supervisor.logs import LineWriter, LogFiles
        files = LogFiles()
        files.max_open = 1000  # the bound is not what stops it here: the fd limit is
        writers = [LineWriter([files.acquire(Path({str(tmp_path)!r}) / f"{{i}}.log")])
                   for i in range(60)]
        used = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 20, used + 20))
        for n in range(3):
            for writer in writers:
                writer.feed(f"{{n}}\\n".encode())
        print(sum(log.dropped_lines for log in files), files.open_count())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    dropped, still_open = map(int, done.stdout.split())
    assert dropped == 0 and still_open < 21
    for i in range(60):
        assert (tmp_path / f"{i}.log").read_text() == "0\n1\n2\n"


# -- real daemons ----------------------------------------------------------------

PYTHON = "/usr/bin/python3"  # a user app cannot run the venv under /tmp/venv-*
SILENT = "#!/bin/sh\nexec sleep 3600\n"
TALKER = """\
import sys, time
tag = sys.argv[1]
for i in range(60):
    print(f"{tag} out {i}", flush=True)
    print(f"{tag} err {i}", file=sys.stderr, flush=True)
    time.sleep(0.005)
for line in sys.stdin:
    print(f"{tag} {line.strip()}", flush=True)
"""


def daemon_with_nofile(home: Path, limit: int) -> psutil.Process:
    """A daemon started (``corral ping``) under a real ``ulimit -n``, which it inherits."""
    subprocess.run(
        [sys.executable, "-m", "corral", "ping"],
        check=True,
        capture_output=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)),
    )
    return psutil.Process(int((home / "corral.pid").read_text().split()[0]))


def test_an_app_that_never_writes_holds_no_log_fd_and_each_app_holds_its_count(
    corral_home, pm, tmp_path
):
    silent = tmp_path / "silent.sh"
    silent.write_text(SILENT)
    silent.chmod(0o755)
    daemon = psutil.Process(pm.daemon_pid)
    logs = corral_home / "logs"
    pm.start(str(silent), {"name": "first", "interpreter": "none"})  # the pipe holder's link
    wait_for(lambda: pm.list()[0].status == "online")
    before = non_files(daemon.pid)
    apps = [{"name": f"s{i}", "script": str(silent), "interpreter": "none"} for i in range(20)]
    (tmp_path / "apps.json").write_text(json.dumps({"apps": apps}))
    pm.start(str(tmp_path / "apps.json"))
    wait_for(lambda: sum(p.status == "online" for p in pm.list()) == 21)

    assert open_under(logs, daemon.pid) == []  # made, but no descriptor held
    assert all(Path(p.out_log).exists() and Path(p.err_log).exists() for p in pm.list())
    # out and err pipes, channel, pidfd (an app the daemon forks itself, as its first
    # ones; one its spawner forks holds no pidfd: tests/core/test_spawner.py)
    assert non_files(daemon.pid) - before == 20 * FDS_PER_INSTANCE
    assert FDS_PER_INSTANCE == 4

    talker = tmp_path / "talker.py"
    talker.write_text(TALKER)
    pm.start(str(talker), {"name": "talk", "args": ["t"]})
    out = Path(pm.describe("talk")[0].out_log)
    wait_for(lambda: "t out 59" in out.read_text())
    assert str(out) in open_under(logs, daemon.pid)  # the writer's file is open


def test_lines_of_more_apps_than_open_files_reach_their_files_in_order(
    corral_home, tmp_path, monkeypatch
):
    (corral_home / "logrotate.json").write_text('{"rotate_interval": "off"}')
    monkeypatch.setenv("CORRAL_PLUGINS", "logrotate")  # reload_logs is its
    daemon = daemon_with_nofile(corral_home, 512)  # open_log_limit(): 512 // 16 = 32 files
    talker = tmp_path / "talker.py"
    talker.write_text(TALKER)
    apps = [{"name": f"t{i}", "script": str(talker), "args": [str(i)]} for i in range(30)]
    (tmp_path / "apps.json").write_text(json.dumps({"apps": apps}))
    pm = corral.connect()
    try:
        pm.start(str(tmp_path / "apps.json"))
        logs = corral_home / "logs"
        paths = {p.name: (Path(p.out_log), Path(p.err_log)) for p in pm.list()}
        outs = [paths[f"t{i}"][0] for i in range(30)]
        errs = [paths[f"t{i}"][1] for i in range(30)]
        most = 0

        def all_written() -> bool:
            nonlocal most
            most = max(most, len(open_under(logs, daemon.pid)))
            return all(f"{i} err 59" in errs[i].read_text() for i in range(30))

        wait_for(all_written, timeout=60, what="60 lines from each of 30 apps")
        assert most <= 32 + 1  # corral.log besides
        for i in range(30):  # 60 files through 32 descriptors: every line, in order
            assert outs[i].read_text().splitlines() == [f"{i} out {n}" for n in range(60)]
            assert errs[i].read_text().splitlines() == [f"{i} err {n}" for n in range(60)]

        # flush and a rotation by mv + reloadLogs, on files the bound closed
        assert str(outs[0]) in pm.flush("t0")
        rotated = outs[1].with_name(outs[1].name + ".1")
        os.rename(outs[1], rotated)
        assert str(outs[1]) in pm.reload_logs()
        pm.send_line(0, "after flush")
        pm.send_line(1, "after mv")
        wait_for(lambda: outs[1].exists() and outs[1].read_text() == "1 after mv\n")
        wait_for(lambda: outs[0].read_text() == "0 after flush\n")
        assert rotated.read_text().count("\n") == 60
    finally:
        pm.kill_daemon()
        pm.disconnect()


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not os.access(PYTHON, os.X_OK),
    reason="needs root, useradd and /usr/bin/python3",
)
def test_a_user_app_of_a_root_daemon_reopens_its_file_as_the_user_never_through_a_link(
    corral_home, tmp_path
):
    daemon = daemon_with_nofile(corral_home, 192)  # open_log_limit(): 12 files
    name = f"corral-fds-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "-m", name], check=True, capture_output=True, timeout=30)
    pm = corral.connect()
    try:
        account = pwd.getpwnam(name)
        talker = Path(account.pw_dir) / "talker.py"
        talker.write_text(TALKER)
        out = Path(account.pw_dir) / "logs" / "out.log"  # the app's own path: its rights
        options = {"args": ["u"], "user": name, "out_file": str(out), "interpreter": PYTHON}
        pm.start(str(talker), {"name": "u", **options})
        wait_for(lambda: out.exists() and "u out 59" in out.read_text())
        assert out.stat().st_uid == account.pw_uid

        root_talker = tmp_path / "talker.py"
        root_talker.write_text(TALKER)
        for i in range(7):  # 14 more files through 12 descriptors: out.log is closed
            pm.start(str(root_talker), {"name": f"r{i}", "args": [f"r{i}"]})
        errs = [Path(p.err_log) for p in pm.list() if p.name != "u"]
        wait_for(lambda: all("err 59" in e.read_text() for e in errs), timeout=60)
        assert str(out) not in open_under(out.parent, daemon.pid)

        victim = tmp_path / "root-only"
        victim.write_bytes(b"root's\n")
        os.chmod(victim, 0o600)
        os.rename(out, out.with_name("out.log.1"))
        os.symlink(victim, out)  # what the account could do while the file was closed
        pm.send_line(0, "through the link?")
        wait_for(lambda: any("out.log" in d["path"] for d in pm.describe("u")[0].log_drops))
        assert victim.read_bytes() == b"root's\n"

        out.unlink()
        wait_for(lambda: pm.send_line(0, "back") and out.exists() and "u back" in out.read_text())
        assert out.stat().st_uid == account.pw_uid
    finally:
        pm.kill_daemon()
        pm.disconnect()
        subprocess.run(["userdel", "-r", name], capture_output=True, timeout=30)
