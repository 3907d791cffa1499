"""A full disk under the log files: the app runs on, corral says so once, then writes again.

Each test mounts a real 256 KiB tmpfs (root or CAP_SYS_ADMIN; skipped when
mount is refused) and fills it for real: first under a bare LogFile and
corral.log, then under the logs of an app a detached daemon runs, then under
the whole CORRAL_HOME. The counting app prints numbered lines without end and
keeps its count in a file on another disk, so the test can tell every line
it printed from the ones the log kept and the ones corral says it dropped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import corral
from corral.daemon.log import DaemonLog
from corral.daemon.state import load_state, save_state
from corral.supervisor.logfile import LogFile
from corral.testing import kill_tree, wait_for

SIZE = 256 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")
NO_SPACE = os.strerror(errno.ENOSPC)

COUNTER = '''\
"""Prints numbered lines without end; how many it printed is in argv[1] every 100 lines
and at exit."""
import signal
import sys
import time

side = sys.argv[1]
printed = 0
stopping = []


def save():
    with open(side, "w") as f:
        f.write(str(printed))


# The handler only asks: the count is saved between two whole prints.
signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
while not stopping:
    print(f"{printed + 1:08d} " + "." * 41, flush=True)
    printed += 1
    if printed % 100 == 0:
        save()
    time.sleep(0.0005)
save()
'''
LINE = re.compile(rb"(\d{8}) \.{41}")


# -- the disk ------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(where: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs mounted on ``where`` (made if missing), unmounted at the end."""
    where.mkdir(exist_ok=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(where)],
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command to make a small tmpfs")
    except subprocess.CalledProcessError as exc:
        why = (exc.stderr.strip().splitlines() or ["refused"])[0]
        pytest.skip(f"mounting a tmpfs needs root or CAP_SYS_ADMIN: {why}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk") as where:
        yield where


def free_blocks(path: Path) -> int:
    return os.statvfs(path).f_bfree


def fill(path: Path, leave: int = 0) -> Path:
    """A file at ``path`` taking every free block of its disk but ``leave`` bytes' worth."""
    blocks = max(free_blocks(path.parent) - math.ceil(leave / PAGE), 0)  # tmpfs: block = page
    with open(path, "wb", buffering=0) as f:
        for _ in range(blocks):
            f.write(b"\0" * PAGE)
    return path


# -- reading what was written ------------------------------------------------


def numbers(path: Path) -> list[int]:
    """The line numbers in a counting app's log; fails on any line that is not whole."""
    found = []
    for line in path.read_bytes().splitlines():
        match = LINE.fullmatch(line)
        assert match, f"torn or foreign line in {path}: {line[:80]!r}"
        found.append(int(match[1]))
    return found


def last_number(path: Path) -> int:
    try:
        tail = path.read_bytes()[-200:].splitlines()
    except FileNotFoundError:
        return 0
    return max((int(m[1]) for m in map(LINE.fullmatch, tail) if m), default=0)


def records(home: Path) -> list[dict]:
    """corral.log, every line parsed (a torn record fails the test)."""
    return [json.loads(line) for line in (home / "corral.log").read_text().splitlines()]


def about(home: Path, path: Path, words: str) -> list[dict]:
    return [r for r in records(home) if r.get("path") == str(path) and words in r["event"]]


def printed(side: Path) -> int:
    try:
        return int(side.read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def drops(client: corral.Client, name: str, path: Path) -> dict | None:
    found = [d for d in client.describe(name)[0].log_drops if d["path"] == str(path)]
    return found[0] if found else None


# -- LogFile and corral.log on a real full disk -------------------------------


def test_a_write_cut_short_by_a_full_disk_leaves_whole_lines(disk):
    failed, resumed = [], []
    log = LogFile(
        disk / "app.log",
        on_error=lambda log, exc: failed.append(exc.errno),
        on_resume=lambda log, lines, nbytes, seconds: resumed.append((lines, nbytes)),
    )
    try:
        head = b"h" * (PAGE - 351) + b"\n"  # leaves 350 bytes free in the file's only page
        log.write(head)
        filler = fill(disk / "filler")
        assert free_blocks(disk) == 0
        lines = [b"%03d" % i + b"." * 96 + b"\n" for i in range(10)]  # 100 bytes each

        log.write(b"".join(lines))  # 350 bytes fit: 3 lines and half of the 4th

        assert (disk / "app.log").read_bytes() == head + b"".join(lines[:3])
        assert (log.dropped_lines, log.dropped, log.errors) == (7, 700, 1)
        assert log.error.errno == errno.ENOSPC and failed == [errno.ENOSPC]

        # 50 bytes are free in the page again, but the disk has no free block: not tried,
        # or this line would end the failing streak and the next one start another
        log.write(b"short\n")
        assert (disk / "app.log").read_bytes() == head + b"".join(lines[:3])
        assert (log.dropped_lines, log.dropped, log.errors) == (8, 706, 2)
        assert failed == [errno.ENOSPC] and resumed == []
        assert log.status()["error"] == NO_SPACE and log.status()["failing_since"]

        filler.unlink()
        log.write(b"after\n")

        assert (disk / "app.log").read_bytes() == head + b"".join(lines[:3]) + b"after\n"
        assert resumed == [(8, 706)] and failed == [errno.ENOSPC]
        assert log.error is None and log.failing_since is None
        assert log.status() == {
            "path": str(disk / "app.log"),
            "error": None,
            "lines": 8,
            "bytes": 706,
            "failing_since": None,
        }
    finally:
        log.close()


def test_each_failing_streak_is_reported_once(disk):
    failed, resumed = [], []
    log = LogFile(
        disk / "app.log",
        on_error=lambda log, exc: failed.append(exc.errno),
        on_resume=lambda log, lines, nbytes, seconds: resumed.append(lines),
    )
    try:
        for streak in range(1, 4):
            filler = fill(disk / "filler")
            written = 0
            while log.failing_since is None:
                log.write(b"x" * 99 + b"\n")
                written += 1
            for _ in range(50):
                log.write(b"y" * 99 + b"\n")
            filler.unlink()
            log.truncate()
            log.write(b"back\n")
            assert failed == [errno.ENOSPC] * streak and resumed == [51] * streak, written
            assert (disk / "app.log").read_bytes() == b"back\n"
    finally:
        log.close()


def test_corral_log_on_a_full_disk_drops_records_and_says_how_many(disk):
    daemon_log = DaemonLog(disk / "corral.log")
    try:
        daemon_log.logger.info("before")
        filler = fill(disk / "filler")
        tried = 0
        while daemon_log.file.failing_since is None:
            daemon_log.logger.info("filling", n=tried)
            tried += 1
        for n in range(5):
            daemon_log.logger.info("lost", n=n)

        filler.unlink()
        daemon_log.logger.info("after")

        found = records(disk)  # every line is whole JSON
        events = [r["event"] for r in found]
        assert events[0] == "before" and "lost" not in events
        assert [r["n"] for r in found if r["event"] == "filling"] == list(range(tried - 1))
        assert events[-2] == "after"
        notice = found[-1]
        assert notice["event"].startswith("corral.log: writing again; 6 records")
        assert notice["dropped_records"] == 6 and notice["level"] == "warning"
        assert oct((disk / "corral.log").stat().st_mode & 0o777) == "0o600"
    finally:
        daemon_log.close()


# -- a daemon's apps -------------------------------------------------------------


def test_an_app_logging_to_a_full_disk_runs_on_and_its_lines_stay_whole(
    disk, pm, tmp_path, corral_home
):
    counter = tmp_path / "counter.py"
    counter.write_text(COUNTER)
    side, other_side = tmp_path / "count", tmp_path / "other-count"
    filler = fill(disk / "filler", leave=64 * 1024)  # the app fills the rest in about a second
    options = {"merge_logs": True, "out_file": str(disk / "out.log")}
    pm.start(str(counter), {"name": "count", "args": [str(side)], **options})
    pm.start(str(counter), {"name": "other", "args": [str(other_side)]})  # logs in CORRAL_HOME
    pid = pm.describe("count")[0].pid
    out = disk / "out.log"

    wait_for(lambda: about(corral_home, out, NO_SPACE), timeout=20, what="the no-space record")
    full_at = printed(side)
    wait_for(lambda: printed(side) >= full_at + 500, what="the app printing on a full disk")
    info = pm.describe("count")[0]
    assert info.pid == pid and info.status == "online"
    assert pm.ping()["pid"]  # the daemon answers
    [error] = about(corral_home, out, "dropping output")
    assert error["event"] == f"log file {out}: {NO_SPACE}; dropping output until space frees"
    assert error["level"] == "error" and error["errno"] == "ENOSPC"
    assert drops(pm, "count", out)["error"] == NO_SPACE
    assert drops(pm, "count", out)["lines"] > 0

    freed_at, started = printed(side), time.monotonic()
    filler.unlink()
    wait_for(lambda: about(corral_home, out, "writing again"), what="the resumed record")
    resume_s = time.monotonic() - started
    wait_for(lambda: last_number(out) > freed_at, what="new lines after space freed")

    pm.stop("count")
    pm.stop("other")
    total, kept = printed(side), numbers(out)
    dropped = drops(pm, "count", out)["lines"]
    assert kept == sorted(set(kept)) and kept[-1] <= total  # increasing, none twice
    assert len(kept) + dropped == total  # every line printed is in the file or counted
    assert kept[-1] > freed_at
    failed, back = about(corral_home, out, "dropping output"), about(corral_home, out, "again")
    assert len(back) >= 1 and len(failed) - len(back) in (0, 1)  # the app may fill it again
    assert sum(r["dropped_lines"] for r in back) <= dropped
    assert numbers(Path(pm.describe("other")[0].out_log)) == list(range(1, printed(other_side) + 1))
    assert pm.describe("other")[0].log_drops == []
    print(
        f"\nfull after {full_at} lines; {dropped} of {total} lines dropped "
        f"({len(failed)} streak(s)); first resume {resume_s * 1000:.0f} ms after freeing"
    )


def test_a_daemon_whose_home_is_full_keeps_serving(corral_home, tmp_path):
    counter = tmp_path / "counter.py"
    counter.write_text(COUNTER)
    side = tmp_path / "count"
    with small_tmpfs(corral_home):
        client = corral.connect()
        daemon_pid = client.ping()["pid"]
        app_pid = None
        try:
            client.start(str(counter), {"name": "count", "args": [str(side)]})
            app_pid = client.describe("count")[0].pid
            out = Path(client.describe("count")[0].out_log)
            fill(corral_home / "filler", leave=64 * 1024)
            wait_for(
                lambda: (drops(client, "count", out) or {}).get("error") == NO_SPACE,
                timeout=20,
                what="the app's log failing",
            )
            full_at = printed(side)
            wait_for(lambda: printed(side) >= full_at + 500, what="the app printing on")
            with contextlib.suppress(corral.CorralError):
                client.dump()  # needs the full disk: may fail, must not break anything
            assert client.ping()["pid"] == daemon_pid and psutil.pid_exists(daemon_pid)
            [info] = client.list()
            assert (info.pid, info.status) == (app_pid, "online")

            freed_at = printed(side)
            client.flush("count")  # empties the app's logs: space for them and corral.log
            wait_for(lambda: last_number(out) > freed_at, what="new lines after the flush")
            wait_for(lambda: about(corral_home, out, "writing again"), what="the resumed record")
            assert client.ping()["pid"] == daemon_pid
            assert client.describe("count")[0].pid == app_pid
            numbers(out)  # whole lines only
            records(corral_home)  # whole records only
            json.loads((corral_home / "state.json").read_text())
        finally:
            with contextlib.suppress(corral.CorralError):
                client.kill_daemon()
            client.disconnect()
            for pid in (daemon_pid, app_pid):
                if pid is not None:
                    kill_tree(pid)


@pytest.mark.parametrize("room", [0, 2 * PAGE], ids=["full", "nearly-full"])
def test_the_state_file_on_a_full_disk_stays_whole(disk, room):
    path = disk / "state.json"
    save_state(path, [{"name": "old"}], 1)
    fill(disk / "filler", leave=room)
    apps = [{"name": f"app-{n}", "note": "x" * 100} for n in range(100)]  # far more than fits
    with pytest.raises(OSError):
        save_state(path, apps, 2)
    assert load_state(path)["apps"] == [{"name": "old"}]  # the old file, whole
    assert sorted(os.listdir(disk)) == ["filler", "state.json"]  # no temporary file left
