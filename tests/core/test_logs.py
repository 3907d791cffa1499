"""Log paths, the open-file registry and the line writer (date prefixes too), on real files."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from corral.supervisor.logfile import LogFile
from corral.supervisor.logs import LineWriter, LogFiles, log_paths, pid_path


@pytest.fixture
def files():
    registry = LogFiles()
    yield registry
    registry.close_all()


# -- paths -------------------------------------------------------------------


def test_default_paths_merged(tmp_path):
    paths = log_paths(tmp_path, "api", 3, {"merge_logs": True})
    assert paths == {
        "out": tmp_path / "logs" / "api-out.log",
        "err": tmp_path / "logs" / "api-error.log",
        "combined": None,
    }


def test_default_paths_per_instance(tmp_path):
    paths = log_paths(tmp_path, "api", 3, {})
    assert paths["out"] == tmp_path / "logs" / "api-out-3.log"
    assert paths["err"] == tmp_path / "logs" / "api-error-3.log"


@pytest.mark.parametrize(
    ("name", "safe"),
    [("my app/v2", "my-app-v2"), ("a.b-c_d", "a.b-c-d"), ("été", "-t-"), ("../x", "..-x")],
)
def test_name_is_sanitised(tmp_path, name, safe):
    paths = log_paths(tmp_path, name, 0, {"merge_logs": True, "log_file": True})
    assert paths["out"] == tmp_path / "logs" / f"{safe}-out.log"
    assert paths["combined"] == tmp_path / "logs" / f"{safe}.log"


def test_user_paths_relative_to_cwd_and_suffixed(tmp_path):
    options = {"cwd": str(tmp_path / "app"), "out_file": "logs/out.log", "error_file": "err.txt"}
    paths = log_paths(tmp_path, "api", 2, options)
    assert paths["out"] == tmp_path / "app" / "logs" / "out-2.log"
    # PM2 only adds the id to names ending in .log
    assert paths["err"] == tmp_path / "app" / "err.txt"


def test_user_paths_merged_keep_their_name(tmp_path):
    options = {"cwd": str(tmp_path), "out_file": "/var/x/app-2024.log", "merge_logs": True}
    assert log_paths(tmp_path, "api", 2, options)["out"] == Path("/var/x/app-2024.log")


def test_home_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    paths = log_paths(tmp_path, "api", 0, {"out_file": "~/o.log", "merge_logs": True})
    assert paths["out"] == tmp_path / "me" / "o.log"


def test_relative_path_without_cwd_uses_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = log_paths(tmp_path, "api", 0, {"out_file": "o.log", "merge_logs": True})
    assert paths["out"] == tmp_path / "o.log"


@pytest.mark.parametrize("null", ["NULL", "/dev/null"])
def test_null_means_no_file(tmp_path, null):
    options = {"out_file": null, "error_file": null, "log_file": null}
    assert log_paths(tmp_path, "api", 1, options) == {"out": None, "err": None, "combined": None}


def test_out_and_err_may_share_a_file(tmp_path):
    options = {"cwd": str(tmp_path), "out_file": "all.log", "error_file": "all.log"}
    paths = log_paths(tmp_path, "api", 4, options)
    assert paths["out"] == paths["err"] == tmp_path / "all-4.log"


def test_combined_log(tmp_path):
    assert log_paths(tmp_path, "api", 1, {"log_file": True})["combined"] == (
        tmp_path / "logs" / "api-1.log"
    )
    options = {"cwd": str(tmp_path), "log_file": "both.log", "merge_logs": True}
    assert log_paths(tmp_path, "api", 1, options)["combined"] == tmp_path / "both.log"
    assert log_paths(tmp_path, "api", 1, {"log_file": False})["combined"] is None


def test_disable_logs(tmp_path):
    options = {"disable_logs": True, "out_file": "o.log", "log_file": True}
    assert log_paths(tmp_path, "api", 1, options) == {"out": None, "err": None, "combined": None}


def test_pid_path(tmp_path):
    assert pid_path(tmp_path, "my app", 5, {}) == tmp_path / "pids" / "my-app-5.pid"
    assert pid_path(tmp_path, "api", 5, {"merge_logs": True}) == tmp_path / "pids" / "api-5.pid"
    given = {"cwd": str(tmp_path), "pid_file": "run/api.pid"}
    assert pid_path(tmp_path, "api", 5, given) == tmp_path / "run" / "api-5.pid"
    assert pid_path(tmp_path, "api", 5, {"pid_file": "NULL"}) == Path(os.devnull)


# -- files -------------------------------------------------------------------


def test_registry_shares_and_counts(tmp_path, files):
    path = tmp_path / "deep" / "dir" / "a.log"
    first = files.acquire(path)
    second = files.acquire(tmp_path / "deep" / "x" / ".." / "dir" / "a.log")
    assert first is second and path.exists() and len(files) == 1
    assert path in files and list(files) == [first]
    mode = stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o640 & ~umask
    files.release(first)
    assert not first.closed
    files.release(second)
    assert first.closed and len(files) == 0 and path not in files


def test_appends_to_existing_file(tmp_path, files):
    path = tmp_path / "a.log"
    path.write_bytes(b"old\n")
    files.acquire(path).write(b"new\n")
    assert path.read_bytes() == b"old\nnew\n"


def test_reopen_after_rename(tmp_path, files):
    path = tmp_path / "a.log"
    log = files.acquire(path)
    writer = LineWriter([log])
    writer.feed(b"one\ntw")
    os.rename(path, tmp_path / "a.log.1")
    writer.feed(b"o\n")  # still the renamed file, as logrotate's "mv" expects
    assert files.reopen_all() == [path]
    writer.feed(b"three\n")
    assert (tmp_path / "a.log.1").read_bytes() == b"one\ntwo\n"
    assert path.read_bytes() == b"three\n"


def test_failed_reopen_keeps_the_old_file(tmp_path, files):
    path = tmp_path / "gone" / "a.log"
    log = files.acquire(path)
    log.write(b"open\n")  # a file is opened by its first write
    os.rename(tmp_path / "gone", tmp_path / "moved")
    assert files.reopen_all() == []
    assert isinstance(log.error, FileNotFoundError)
    log.write(b"kept\n")
    assert (tmp_path / "moved" / "a.log").read_bytes() == b"open\nkept\n"
    assert log.error is None


def test_truncate_while_writing(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    writer.feed(b"before\n" * 1000 + b"part")
    assert files.truncate(path)
    assert path.stat().st_size == 0
    writer.feed(b"ial\nafter\n")
    # O_APPEND: the next write lands at offset 0, no hole of NUL bytes
    assert path.read_bytes() == b"partial\nafter\n"


def test_truncate_files_not_open(tmp_path, files):
    path = tmp_path / "closed.log"
    path.write_bytes(b"data\n")
    assert files.truncate(path) and path.read_bytes() == b""
    assert not files.truncate(tmp_path / "missing.log")


def test_write_error_is_recorded_not_raised():
    reports = []
    log = LogFile(Path("/dev/full"), on_error=lambda log, exc: reports.append(exc.errno))
    try:
        log.write(b"lost\n")
        log.write(b"lost too\n")
        assert log.error.errno == errno.ENOSPC
        assert (log.errors, log.dropped) == (2, 14)
        assert reports == [errno.ENOSPC]  # once per failing streak
    finally:
        log.close()


def test_writes_resume_after_an_error(tmp_path, files):
    path = tmp_path / "a.log"
    log = files.acquire(path)
    log.write(b"one\n")
    read_only = os.open(path, os.O_RDONLY)
    try:
        os.dup2(read_only, log.fileno())  # the fd now refuses writes, as a broken disk would
    finally:
        os.close(read_only)
    LineWriter([log]).feed(b"dropped\n")
    assert log.error is not None and log.errors == 1
    log.reopen()
    log.write(b"two\n")
    assert log.error is None
    assert path.read_bytes() == b"one\ntwo\n"


def test_write_after_close_is_an_error_not_an_exception(tmp_path):
    log = LogFile(tmp_path / "a.log")
    log.close()
    log.write(b"x\n")
    assert log.error.errno == errno.EBADF


# -- lines -------------------------------------------------------------------


def test_partial_lines_across_feeds(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    returned = [writer.feed(bytes([b])) for b in b"hello\nworld\nand"]
    assert b"".join(returned) == b"hello\nworld\n"
    assert writer.pending == b"and"
    assert path.read_bytes() == b"hello\nworld\n"
    assert writer.close() == b"and\n"
    assert writer.close() == b""
    assert path.read_bytes() == b"hello\nworld\nand\n"


def test_fast_path_writes_once_per_chunk(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    assert writer.feed(b"a\nb\nc") == b"a\nb\n"
    assert writer.feed(b"") == b""
    assert writer.feed(b"\n") == b"c\n"
    assert path.read_bytes() == b"a\nb\nc\n"


def test_bytes_pass_through(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    data = b"\xff\xfe\x00bin\x00\n\xc3\n\x80\r\n" + bytes(range(256)).replace(b"\n", b"")
    writer.feed(data)
    writer.close()
    assert path.read_bytes() == data + b"\n"


def test_date_prefix_each_line(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], date_format="YYYY-MM-DD HH:mm:ss")
    assert writer.feed(b"one\ntwo\n\nthr") == b"one\ntwo\n\n"
    assert writer.close() == b"thr\n"
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    stamp = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: "
    for line, text in zip(lines[:-1], [b"one", b"two", b"", b"thr"], strict=True):
        assert re.fullmatch(stamp + re.escape(text), line), line


def test_json_lines(tmp_path, files):
    path = tmp_path / "a.log"
    fields = {"type": "err", "process_id": 7, "app_name": "api"}
    writer = LineWriter([files.acquire(path)], json_fields=fields)
    writer.feed(b'plain\n\xffbad "q" \xc3\xa9\n')
    writer.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["message"] for r in records] == ["plain", '\ufffdbad "q" é']
    for record in records:
        assert list(record) == ["message", "timestamp", "type", "process_id", "app_name"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["timestamp"])
        assert record["type"] == "err" and record["process_id"] == 7


def test_json_with_date_format(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], date_format="[day] D", json_fields={})
    writer.feed(b"x\n")
    assert json.loads(path.read_text())["timestamp"].startswith("day ")


def test_long_partial_is_cut(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], max_line=10)
    assert writer.feed(b"0123456789") == b""  # exactly the limit: held whole
    assert writer.feed(b"ab") == b"0123456789\n"
    assert writer.feed(b"end\nxxxxxxxxxxxx") == b"abend\nxxxxxxxxxx\n"
    assert writer.close() == b"xx\n"
    assert path.read_bytes() == b"0123456789\nabend\nxxxxxxxxxx\nxx\n"


@pytest.mark.parametrize("size", [1, 9, 10, 11, 19, 20, 21, 30, 31, 57])
@pytest.mark.parametrize("chunk", [1, 3, 10, 64, 10_000])
def test_long_line_cut_in_pieces_of_the_limit(tmp_path, files, size, chunk):
    """No piece is longer than the limit, none is empty, joined they are the line."""
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], max_line=10)
    line = bytes(48 + i % 10 for i in range(size))
    data = b"a\n" + line + b"\nb\n"
    returned = [writer.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    assert b"".join(returned) == path.read_bytes()
    pieces = path.read_bytes().split(b"\n")[1:-2]
    assert b"".join(pieces) == line
    assert [len(p) for p in pieces] == [10] * ((size - 1) // 10) + [(size - 1) % 10 + 1]


def test_cut_keeps_utf8_characters_whole(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], max_line=10)
    line = "é" * 12  # 24 bytes: a cut at byte 10 would split nothing, at 9 it would
    writer.feed(b"x" + line.encode() + b"\n")
    pieces = path.read_bytes().split(b"\n")[:-1]
    assert [p.decode() for p in pieces] == ["xéééé", "ééééé", "ééé"]


def test_cut_pieces_each_get_the_date(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], date_format="HH:mm:ss", max_line=10)
    writer.feed(b"0123456789abcdefghijKLM\n")
    lines = path.read_bytes().split(b"\n")[:-1]
    assert [line[len(b"00:00:00: ") :] for line in lines] == [b"0123456789", b"abcdefghij", b"KLM"]


def test_a_flushed_partial_line_is_continued(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], date_format="HH:mm:ss")
    writer.feed(b"10%\r20%\r")
    assert path.read_bytes() == b""
    assert writer.flush() == b"10%\r20%\r"
    assert writer.flush() == b""
    assert path.read_bytes()[10:] == b"10%\r20%\r"  # on disk now, the line still open
    writer.feed(b"30%\r")
    writer.flush()
    writer.feed(b"done\nnext\n")
    lines = path.read_bytes().split(b"\n")[:-1]
    assert [line[10:] for line in lines] == [b"10%\r20%\r30%\rdone", b"next"]


def test_another_writer_ends_a_flushed_line(tmp_path, files):
    path = tmp_path / "a.log"
    out = LineWriter([files.acquire(path)])
    err = LineWriter([files.acquire(path)])
    out.feed(b"wait")
    out.flush()
    err.feed(b"oops\n")
    out.feed(b"ing\n")
    err.feed(b"more")
    err.flush()
    out.close()
    err.close()
    assert path.read_bytes() == b"wait\noops\ning\nmore\n"


def test_a_flushed_line_ended_by_another_writer_adds_no_empty_line(tmp_path, files):
    path = tmp_path / "a.log"
    out = LineWriter([files.acquire(path)])
    err = LineWriter([files.acquire(path)])
    out.feed(b"prompt: ")
    out.flush()
    err.feed(b"e\n")
    out.feed(b"\n")
    assert out.close() == b""
    assert path.read_bytes() == b"prompt: \ne\n"


def test_close_ends_a_flushed_line(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    writer.feed(b"no newline")
    writer.flush()
    writer.close()
    assert path.read_bytes() == b"no newline\n"


def test_json_flush_is_a_record(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)], json_fields={})
    writer.feed(b"50%\r")
    writer.flush()
    writer.feed(b"100%\n")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["message"] for r in records] == ["50%\r", "100%"]


def test_a_file_left_mid_line_gets_a_new_line(tmp_path, files):
    """A daemon killed after flushing a partial line: the next one starts a new line."""
    path = tmp_path / "a.log"
    path.write_bytes(b"old\n40%\r")
    LineWriter([files.acquire(path)]).feed(b"new\n")
    assert path.read_bytes() == b"old\n40%\r\nnew\n"


def test_flush_after_truncate_starts_clean(tmp_path, files):
    path = tmp_path / "a.log"
    out = LineWriter([files.acquire(path)])
    err = LineWriter([files.acquire(path)])
    out.feed(b"open")
    out.flush()
    files.truncate(path)
    err.feed(b"e\n")
    assert path.read_bytes() == b"e\n"


def test_same_target_twice_written_once(tmp_path, files):
    path = tmp_path / "a.log"
    log = files.acquire(path)
    LineWriter([log, log]).feed(b"once\n")
    assert path.read_bytes() == b"once\n"


def test_no_targets_still_splits_lines():
    writer = LineWriter([])
    assert writer.feed(b"a\nb") == b"a\n"
    assert writer.close() == b"b\n"


def _chunks(data: bytes, rng: random.Random, largest: int = 300):
    i = 0
    while i < len(data):
        size = rng.randint(1, largest)
        yield data[i : i + size]
        i += size


def test_out_and_err_on_one_file_never_tear_a_line(tmp_path, files):
    path = tmp_path / "both.log"
    combined = tmp_path / "combined.log"
    out = LineWriter([files.acquire(path), files.acquire(combined)])
    err = LineWriter([files.acquire(path), files.acquire(combined)], date_format="HH:mm:ss")
    rng = random.Random(7)
    out_data = b"".join(b"out %d %s\n" % (i, b"o" * rng.randint(0, 80)) for i in range(3000))
    err_data = b"".join(b"err %d %s\n" % (i, b"e" * rng.randint(0, 80)) for i in range(3000))
    pending = {out: iter(list(_chunks(out_data, rng))), err: iter(list(_chunks(err_data, rng)))}
    turns = [out] * 3000 + [err] * 3000
    rng.shuffle(turns)  # each stream keeps its order, the two interleave at random
    for writer in turns:
        chunk = next(pending[writer], b"")
        writer.feed(chunk)
    for writer, rest in pending.items():
        for chunk in rest:
            writer.feed(chunk)
    out.close()
    err.close()
    for target in (path, combined):
        lines = target.read_bytes().splitlines()
        seen_out = [ln for ln in lines if ln.startswith(b"out ")]
        seen_err = [ln[len("00:00:00: ") :] for ln in lines if not ln.startswith(b"out ")]
        assert seen_out == out_data.splitlines()
        assert seen_err == err_data.splitlines()


def test_200k_lines_in_random_chunks(tmp_path, files):
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    data = b"".join(b"line %d\n" % i for i in range(200_000))
    returned = [writer.feed(chunk) for chunk in _chunks(data, random.Random(1), 70_000)]
    writer.close()
    assert b"".join(returned) == data
    assert path.read_bytes() == data


def test_lines_from_a_real_pipe(tmp_path, files):
    """A child writes 200k lines without a final newline; the daemon's read loop, in small."""
    path = tmp_path / "a.log"
    writer = LineWriter([files.acquire(path)])
    script = (
        "import sys\nfor i in range(200_000): sys.stdout.write(f'n{i}\\n')\nprint('tail', end='')"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        fd = child.stdout.fileno()
        while chunk := os.read(fd, 65536):
            writer.feed(chunk)
        assert writer.close() == b"tail\n"
    finally:
        child.stdout.close()
        child.kill()
        child.wait()
    lines = path.read_bytes().splitlines()
    assert lines[:-1] == [b"n%d" % i for i in range(200_000)]
    assert lines[-1] == b"tail"
