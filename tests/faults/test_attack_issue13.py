"""Issue 13's new CLI attacked as a stranger would, as root, on a temporary CORRAL_HOME.

- `corral ecosystem --force` never writes through a symbolic link planted where its
  temporary file goes, and a FILE that is a directory is one error line.
- `corral logs` reads a bounded part of each file: a log the app's user made a sparse
  file of GiBs with no newline, or `--lines 1000000000` on a big log, stays within a
  fixed memory, in seconds (it read backwards with a quadratic join, then held it all).
- `corral import` / `corral start` of a supervisord or circus file whose includes name
  /dev/zero, a fifo or a huge file is one error line, at once (MemoryError, a hang).
- `corral attach` fed a 200 MB line holds at most a line's limit of it: one error line,
  the next lines still reach the app (it held the whole line, then twice).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import APPS, out_lines, wait_for
from tests.conftest import run_cli as corral

# `corral ecosystem --force` as another user would see it run: the attacker guessed the
# pid (they are sequential) and planted a link at the temporary file's name.
PLANT_AND_RUN = """
import os, sys
from corral.cli.main import main
for name in (".ecosystem.config.js.%d.tmp" % os.getpid(), ".ecosystem.config.js.tmp"):
    os.symlink(sys.argv[1], name)
sys.argv = ["corral", "ecosystem", "--force"]
main()
"""


def test_ecosystem_force_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root:x:0:0\n")
    work = tmp_path / "shared"
    work.mkdir()
    (work / "ecosystem.config.js").write_text("old\n")
    result = subprocess.run(
        [sys.executable, "-c", PLANT_AND_RUN, str(victim)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "root:x:0:0\n"  # failed before the fix: the template
    assert "module.exports" in (work / "ecosystem.config.js").read_text()
    assert not (work / "ecosystem.config.js").is_symlink()


def test_ecosystem_replaces_a_link_at_its_name_and_leaves_the_target(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("secret\n")
    work = tmp_path / "w"
    work.mkdir()
    os.symlink(victim, work / "ecosystem.config.js")
    refused = corral("ecosystem", cwd=work, check=False)
    assert refused.returncode == 1 and "pass --force" in refused.stderr
    corral("ecosystem", "--force", cwd=work)
    assert victim.read_text() == "secret\n"
    assert not (work / "ecosystem.config.js").is_symlink()


def test_ecosystem_of_a_directory_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "x.config.js").mkdir()
    for force in ([], ["--force"]):
        result = corral("ecosystem", "x.config.js", *force, cwd=tmp_path, check=False)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr  # was a traceback with --force
        assert "is a directory" in result.stderr
        assert result.stdout == ""
    assert list((tmp_path / "x.config.js").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.config.js"]  # no temp left


# -- corral logs: bounded reads ----------------------------------------------------

# runs its arguments and tells their peak RSS alone (RUSAGE_CHILDREN of the test process
# mixes every child it ever waited for)
MEASURE = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:], timeout=55); "
    "sys.stderr.write('PEAK %d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
    "sys.exit(rc)"
)


def measured(command: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, int]:
    """``command``'s result (its stderr without the PEAK line) and its peak RSS in KiB."""
    result = subprocess.run([sys.executable, "-c", MEASURE, *command], **kwargs)
    err = result.stderr
    text = isinstance(err, str)
    body, _, peak = (err if text else err.decode()).rpartition("PEAK ")
    result.stderr = body if text else body.encode()
    return result, int(peak)


def logs_run(corral_home: Path, *args: str) -> tuple[subprocess.CompletedProcess, float, int]:
    """``corral logs ARGS`` as its own process: its result, seconds, and peak RSS (KiB)."""
    command = [sys.executable, "-m", "corral", "logs", *args]
    env = dict(os.environ, CORRAL_HOME=str(corral_home), COLUMNS="200")
    started = time.monotonic()
    try:
        result, peak = measured(command, env=env, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"corral logs {args} did not end in 60 s") from None
    took = time.monotonic() - started
    return result, took, peak


def test_logs_of_a_sparse_log_of_gibs_is_bounded(corral_home: Path, pm, tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    pm.start(str(APPS / "sleeper.py"), {"name": "s", "out_file": str(out)})
    wait_for(lambda: out.exists() and out.stat().st_size > 0)
    with open(out, "r+b") as log:  # what the app's user can do to its own log
        log.truncate(4 << 30)  # 4 GiB of NUL, no newline, on no disk
    result, took, peak = logs_run(corral_home, "s", "--nostream", "--lines", "5", "--raw")
    assert result.returncode == 0, result.stderr
    assert took < 30 and peak < 300_000, (took, peak)  # KiB


def test_logs_lines_a_billion_on_a_big_log_is_bounded(
    corral_home: Path, pm, tmp_path: Path
) -> None:
    out = tmp_path / "out.log"
    pm.start(str(APPS / "sleeper.py"), {"name": "s", "out_file": str(out)})
    wait_for(lambda: out.exists() and out.stat().st_size > 0)
    line = b"x" * 99 + b"\n"
    with open(out, "ab") as log:
        for _ in range(64):
            log.write(line * 10_000)  # 64 MB, 640,000 lines
        log.write(b"the last line\n")
    result, took, peak = logs_run(
        corral_home, "s", "--nostream", "--lines", "1000000000", "--raw", "--out"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b"the last line\n")
    assert took < 30 and peak < 400_000, (took, peak)  # KiB


FOLLOW_SPARSE = """
import os, resource, sys
from corral.cli.logtail import FollowedFile
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
path = sys.argv[1]
follower = FollowedFile(path)
follower.start_at_end()
with open(path, "r+b") as log:
    log.truncate(4 << 30)  # the app's user grows its log by 4 GiB of NUL, no newline
polls = [sum(len(line) for line in follower.read_lines()) for _ in range(3)]
print(polls, max(len(follower._partial), 0))
"""


def test_following_a_log_grown_by_gibs_reads_it_over_polls(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_bytes(b"one\n")
    result = subprocess.run(
        [sys.executable, "-c", FOLLOW_SPARSE, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-500:]  # was MemoryError (1 GiB limit)
    polls, partial = result.stdout.split("] ")
    read = [int(n) for n in polls.strip("[").split(",")]
    assert all(15 << 20 <= n <= 16 << 20 for n in read), read  # 1 MiB pieces, 16 a poll
    assert int(partial) <= 1 << 20


# -- corral import: what an [include] names ---------------------------------------------


def test_import_of_includes_naming_dev_zero_a_fifo_or_a_huge_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.conf")
    with open(tmp_path / "huge.conf", "wb") as huge:
        huge.write(b"[program:h]\ncommand=/bin/true\n")
        huge.truncate(2 << 30)  # 2 GiB, sparse
    circus = tmp_path / "circus.ini"
    circus.write_text("[circus]\ninclude = fifo.conf\n[watcher:w]\ncmd = /bin/true\n")
    cases = {"/dev/zero": "/dev/zero", "fifo.conf": "fifo.conf", "huge.conf": "huge.conf"}
    for included, named in cases.items():
        conf = tmp_path / "supervisord.conf"
        conf.write_text(f"[include]\nfiles = {included}\n[program:a]\ncommand=/bin/true\n")
        for args in (["import", str(conf)], ["import", str(circus)]):
            try:  # a 1 GiB address space: reading /dev/zero or 2 GiB whole fails
                result = subprocess.run(
                    [sys.executable, "-m", "corral", *args],
                    capture_output=True,
                    text=True,
                    timeout=20,
                    preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30,) * 2),
                )
            except subprocess.TimeoutExpired:
                raise AssertionError(f"corral {args} hung on an include of {included}") from None
            assert result.returncode == 1, (included, result.stdout[-300:])
            assert result.stderr.count("\n") == 1, (included, result.stderr[-500:])
            assert result.stderr.startswith("error: "), result.stderr
            if args[1] == str(conf):
                assert named in result.stderr, result.stderr


# -- corral attach: a line without end ---------------------------------------------------


def test_attach_fed_a_200_mb_line_stays_bounded_and_goes_on(
    corral_home: Path, monkeypatch, tmp_path: Path
) -> None:
    import corral as corral_api

    monkeypatch.setenv("CORRAL_PLUGINS", "bus")
    client = corral_api.connect()
    try:
        info = client.start(str(APPS / "stdin_echo.py"), {"name": "echo"})[0]
        wait_for(lambda: "ready" in out_lines(info), what="app up")
        feed = tmp_path / "feed"
        with open(feed, "wb") as data:
            data.write(b"first\n")
            for _ in range(200):
                data.write(b"x" * (1 << 20))
            data.write(b"\nafter\n")
        env = dict(os.environ, CORRAL_HOME=str(corral_home), CORRAL_PLUGINS="bus")
        with open(feed, "rb") as stdin:
            result, peak = measured(
                [sys.executable, "-m", "corral", "attach", "0"],
                stdin=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
        assert result.returncode == 0, result.stderr[-500:]
        assert result.stdout == "got: first\ngot: after\n", result.stdout[-300:]
        assert result.stderr.count("error:") == 1, result.stderr[-500:]
        assert peak < 150_000, peak  # KiB; was ~600 MB
        assert client.list()[0].status == "online"
    finally:
        client.kill_daemon()
        client.disconnect()


def test_a_fifo_named_as_a_target_is_never_opened_to_sniff_for_sections(tmp_path):
    """Guard: `corral start ./pipe` (no suffix: it could be a supervisord file) must not block
    on a fifo nobody writes to while looking for ini sections."""
    import threading

    from corral.options.config import is_config_file

    fifo = tmp_path / "programs"
    os.mkfifo(fifo)
    answer: list[bool] = []
    worker = threading.Thread(target=lambda: answer.append(is_config_file(fifo)), daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the open so the thread ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
        pytest.fail("is_config_file blocked on a fifo")
    assert answer == [False]
