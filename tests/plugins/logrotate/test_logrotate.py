"""The logrotate plugin: real daemons, real children, real files."""

from __future__ import annotations

import gzip
import json
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import corral
from corral.errors import NotFoundError, OptionError, PluginError
from corral.plugins import logrotate
from corral.plugins.logrotate import parse_setting, rotated_files, rotated_name
from tests.conftest import python_app, wait_for

# writes N numbered lines as fast as it can: even ones to stdout, odd ones to stderr
PRODUCER = """\
import sys
n = int(sys.argv[1])
out = open(1, "w", buffering=1 << 16, closefd=False)
err = open(2, "w", buffering=1 << 16, closefd=False)
pad = "x" * 80
for i in range(n):
    (err if i % 2 else out).write(f"{i:07d} {pad}\\n")
out.flush()
err.flush()
"""
# one numbered line every argv[1] seconds (default 0.02) until SIGINT, then a quiet exit
TICKER = """\
import itertools, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
period = float(sys.argv[1]) if len(sys.argv) > 1 else 0.02
for i in itertools.count():
    print(f"{i:07d}", flush=True)
    time.sleep(period)
"""
LINE = re.compile(rb"^(?:(.+?): )?(\d{7}) x{80}$")


@pytest.fixture
def pm(corral_home: Path) -> Iterator[corral.Client]:
    """An in-process daemon with the logrotate plugin; no time-based rotation."""
    (corral_home / "logrotate.json").write_text('{"rotate_interval": "off"}')
    with corral.connect(no_daemon=True, plugins=[logrotate]) as client:
        yield client


def wait_stopped(pm: corral.Client, name: str, timeout: float = 60.0) -> None:
    wait_for(
        lambda: pm.describe(name)[0].status == "stopped", timeout=timeout, what=f"{name} to exit"
    )


def content(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


def all_lines(path: Path) -> list[bytes]:
    """The rotated files of ``path``, oldest first, then ``path``: every line, whole."""
    data = b"".join(content(p) for p in [*rotated_files(path), path])
    assert data.endswith(b"\n")
    return data.split(b"\n")[:-1]


def numbers(lines: list[bytes], dated: bool) -> list[int]:
    found = []
    for line in lines:
        match = LINE.match(line)
        assert match is not None, f"torn line {line[:120]!r}"
        assert (match.group(1) is not None) == dated, line
        found.append(int(match.group(2)))
    return found


def ticker(pm: corral.Client, tmp_path: Path, name: str, **options) -> Path:
    script = python_app(tmp_path, f"{name}.py", TICKER)
    [info] = pm.start(script, {"name": name, **options})
    path = Path(info.out_log)
    wait_for(lambda: path.exists() and path.stat().st_size > 0, what="a first line")
    return path


def ticks(path: Path) -> list[int]:
    return [int(line) for line in all_lines(path)]


def consecutive(values: list[int]) -> bool:
    return values == list(range(values[0], values[0] + len(values)))


# -- the guarantee ---------------------------------------------------------------


@pytest.mark.parametrize("dated", [False, True], ids=["plain", "date-prefix"])
def test_no_line_lost_duplicated_or_torn(pm, tmp_path, dated):
    """200k lines at full speed through out, err and a combined file, rotated every 512K
    while another thread calls reload_logs over and over."""
    total = 200_000
    pm.call("logrotate_set", key="max_size", value="512K")
    pm.call("logrotate_set", key="retain", value="all")
    script = python_app(tmp_path, "producer.py", PRODUCER)
    logs = tmp_path / "logs"
    options = {
        "name": "producer",
        "args": [str(total)],
        "autorestart": False,
        "merge_logs": True,
        "out_file": str(logs / "p-out.log"),
        "error_file": str(logs / "p-err.log"),
        "log_file": str(logs / "p.log"),
    }
    if dated:
        options["log_date_format"] = "YYYY-MM-DD HH:mm:ss.SSS"

    done = threading.Event()
    reloads = []

    def reload_forever() -> None:
        while not done.is_set():
            reloads.append(len(pm.reload_logs()))

    thread = threading.Thread(target=reload_forever)
    thread.start()
    try:
        wait_for(lambda: reloads, what="a first reload_logs")
        pm.start(script, options)
        wait_stopped(pm, "producer")
    finally:
        done.set()
        thread.join()

    out = numbers(all_lines(logs / "p-out.log"), dated)
    err = numbers(all_lines(logs / "p-err.log"), dated)
    both = numbers(all_lines(logs / "p.log"), dated)
    assert out == list(range(0, total, 2))
    assert err == list(range(1, total, 2))
    assert sorted(both) == list(range(total))
    assert [n for n in both if n % 2 == 0] == out  # each stream in order in the combined file
    assert [n for n in both if n % 2] == err

    limit = 512 * 1024
    for path in (logs / "p-out.log", logs / "p-err.log", logs / "p.log"):
        rotated = rotated_files(path)
        assert len(rotated) >= (16 if path.name == "p.log" else 8)
        for old in rotated:
            # rotated at the first check past max_size: never early, a chunk or two late
            assert limit <= old.stat().st_size < limit + 320 * 1024, old
    assert len(reloads) >= 2
    assert pm.call("logrotate_show")["rotations"] == sum(
        len(rotated_files(p)) for p in (logs / "p-out.log", logs / "p-err.log", logs / "p.log")
    )


# -- what a rotation produces -----------------------------------------------------


def test_rotate_now_renames_and_reopens(pm, tmp_path):
    path = ticker(pm, tmp_path, "tick")
    [result] = pm.call("logrotate_rotate", target="tick")
    rotated = Path(result["rotated"])
    assert re.fullmatch(r"tick-out__\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.log", rotated.name)
    assert rotated.parent == path.parent
    assert result["deleted"] == []
    wait_for(lambda: path.exists() and path.stat().st_size > 0, what="lines in the new file")
    pm.stop("tick")
    values = ticks(path)
    assert consecutive(values) and values[0] == 0
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(rotated.stat().st_mode)


def test_empty_files_are_not_rotated(pm, tmp_path):
    ticker(pm, tmp_path, "tick")
    pm.stop("tick")
    pm.call("logrotate_rotate", target="tick")
    # the err file is empty and corral.log is not part of a targeted rotation
    assert pm.call("logrotate_rotate", target="tick") == []


def test_compress_writes_gz_off_the_loop(pm, tmp_path):
    pm.call("logrotate_set", key="compress", value="true")
    path = ticker(pm, tmp_path, "tick")
    results = []
    for _ in range(3):
        before = path.stat().st_size
        wait_for(lambda before=before: path.stat().st_size > before, what="a new line")
        results += pm.call("logrotate_rotate", target="tick")
    pm.stop("tick")
    names = [Path(r["rotated"]) for r in results]
    assert all(p.name.endswith(".log.gz") and p.exists() for p in names)
    assert rotated_files(path) == names
    assert not [p for p in path.parent.iterdir() if p.name.endswith((".tmp", "__.log"))]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in names)
    values = ticks(path)
    assert consecutive(values) and values[0] == 0
    with gzip.open(names[0]) as f:
        assert f.readline() == b"0000000\n"


def test_retain_keeps_the_newest(pm, tmp_path):
    pm.call("logrotate_set", key="retain", value="2")
    path = ticker(pm, tmp_path, "tick")
    deleted = []
    for _ in range(5):
        before = path.stat().st_size
        wait_for(lambda before=before: path.stat().st_size > before, what="a new line")
        [result] = pm.call("logrotate_rotate", target="tick")
        deleted += result["deleted"]
    pm.stop("tick")
    kept = rotated_files(path)
    assert len(kept) == 2
    assert len(deleted) == 3 and not any(Path(p).exists() for p in deleted)
    values = ticks(path)  # the kept files and the current one follow on
    assert consecutive(values) and values[0] > 0


def test_names_never_collide_within_a_second(pm, tmp_path):
    pm.call("logrotate_set", key="date_format", value="YYYY")  # one name per year
    pm.call("logrotate_set", key="retain", value="3")
    path = ticker(pm, tmp_path, "tick")
    for _ in range(6):
        before = path.stat().st_size
        wait_for(lambda before=before: path.stat().st_size > before, what="a new line")
        pm.call("logrotate_rotate", target="tick")
    pm.stop("tick")
    year = time.strftime("%Y")
    assert [p.name for p in rotated_files(path)] == [
        f"tick-out__{year}__3.log",
        f"tick-out__{year}__4.log",
        f"tick-out__{year}__5.log",
    ]
    assert consecutive(ticks(path))


def test_per_app_options_override_the_defaults(pm, tmp_path):
    small = ticker(
        pm,
        tmp_path,
        "small",
        logrotate_max_size="1K",
        logrotate_retain=2,
        logrotateCompress=True,
        args=["0.001"],
    )
    big = ticker(pm, tmp_path, "big")
    wait_for(lambda: pm.call("logrotate_show")["rotations"] >= 4, what="four rotations by size")
    wait_for(lambda: all(p.name.endswith(".gz") for p in rotated_files(small)), what="gzip")
    pm.stop("small")
    assert len(rotated_files(small)) == 2
    info = pm.describe("small")[0]
    assert info.options["logrotate_max_size"] == 1024
    assert info.options["logrotate_compress"] is True
    assert rotated_files(big) == []
    values = ticks(small)
    assert consecutive(values) and values[0] > 0


def test_bad_app_options_are_refused(pm, tmp_path):
    script = python_app(tmp_path, "a.py", "")
    with pytest.raises(OptionError, match="logrotate_retain must be an integer >= 0 or 'all'"):
        pm.start(script, {"logrotate_retain": "none"})
    with pytest.raises(OptionError, match="logrotate_max_size"):
        pm.start(script, {"logrotate_max_size": "10 megs"})


def test_options_without_the_plugin_name_it(corral_home, tmp_path):
    script = python_app(tmp_path, "a.py", "")
    with corral.connect(no_daemon=True, plugins=[]) as client:
        for key in ("logrotate_max_size", "logrotate_retain", "logrotateCompress"):
            with pytest.raises(PluginError, match="needs the plugin 'logrotate'"):
                client.start(script, {key: 1})


# -- time -------------------------------------------------------------------------


def test_rotate_interval_every_second(pm, tmp_path):
    path = ticker(pm, tmp_path, "tick")
    pm.call("logrotate_set", key="rotate_interval", value="* * * * * *")
    wait_for(lambda: len(rotated_files(path)) >= 3, what="three rotations", timeout=20)
    pm.call("logrotate_set", key="rotate_interval", value="off")
    pm.stop("tick")
    rotated = rotated_files(path)
    stamps = [re.search(r"__(.+)\.log$", p.name).group(1) for p in rotated]
    assert len(set(stamps)) == len(stamps)  # one rotation per second, no second twice
    values = ticks(path)
    assert consecutive(values) and values[0] == 0


# -- external rotation --------------------------------------------------------------


def test_external_mv_then_reload_logs(pm, tmp_path):
    path = ticker(pm, tmp_path, "tick")
    moved = path.with_name("tick-out.log.1")
    os.rename(path, moved)
    size = moved.stat().st_size
    wait_for(lambda: moved.stat().st_size > size, what="lines still going to the moved file")
    assert str(path) in pm.reload_logs()
    wait_for(lambda: path.exists() and path.stat().st_size > 0, what="lines in the new file")
    pm.stop("tick")
    values = [int(line) for line in (moved.read_bytes() + path.read_bytes()).splitlines()]
    assert consecutive(values) and values[0] == 0


def test_rotation_after_an_external_mv_only_reopens(pm, tmp_path):
    path = ticker(pm, tmp_path, "tick")
    moved = path.with_name("elsewhere.log")
    os.rename(path, moved)
    assert pm.call("logrotate_rotate", target="tick") == []  # the moved file is not renamed
    wait_for(lambda: path.exists() and path.stat().st_size > 0, what="lines in the new file")
    pm.stop("tick")
    values = [int(line) for line in (moved.read_bytes() + path.read_bytes()).splitlines()]
    assert consecutive(values) and values[0] == 0
    assert rotated_files(path) == []


# -- corral.log ---------------------------------------------------------------------


def test_corral_log_is_rotated(pm, corral_home, tmp_path):
    log = corral_home / "corral.log"
    results = pm.call("logrotate_rotate")
    [rotated] = [Path(r["rotated"]) for r in results if "corral__" in r["rotated"]]
    assert rotated.parent == corral_home
    assert b'"daemon started"' in rotated.read_bytes()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    ticker(pm, tmp_path, "tick")
    wait_for(lambda: b'"spawned"' in log.read_bytes(), what="new daemon lines in corral.log")
    assert b'"spawned"' not in rotated.read_bytes()
    for line in log.read_bytes().splitlines() + rotated.read_bytes().splitlines():
        json.loads(line)


def test_corral_log_by_size(pm, corral_home):
    pm.call("logrotate_set", key="max_size", value="1")
    pm.call("logrotate_set", key="workerInterval", value="0.05")
    wait_for(lambda: rotated_files(corral_home / "corral.log"), what="corral.log rotated")


def test_rotate_module_false_leaves_corral_log(pm, corral_home):
    pm.call("logrotate_set", key="pm2-logrotate:rotateModule", value="false")
    assert pm.call("logrotate_rotate") == []
    assert rotated_files(corral_home / "corral.log") == []


# -- flush --------------------------------------------------------------------------


def test_flush_all_deletes_rotated_files(pm, tmp_path):
    path = ticker(pm, tmp_path, "tick")
    pm.call("logrotate_rotate", target="tick")
    pm.stop("tick")
    rotated = rotated_files(path)
    assert len(rotated) == 1
    reply = pm.call("logrotate_flush", target="tick")
    assert sorted(reply["flushed"]) == [str(path.with_name("tick-error.log")), str(path)]
    assert reply["deleted"] == []
    assert path.stat().st_size == 0 and rotated[0].exists()
    reply = pm.call("logrotate_flush", target="tick", all=True)
    assert reply["deleted"] == [str(rotated[0])]
    assert not rotated[0].exists()
    with pytest.raises(NotFoundError, match="nope"):
        pm.call("logrotate_flush", target="nope", all=True)


def test_flush_all_without_target_covers_corral_log(pm, corral_home):
    log = corral_home / "corral.log"
    pm.call("logrotate_rotate")
    [old] = rotated_files(log)
    reply = pm.call("logrotate_flush", all=True)
    assert str(log) in reply["flushed"] and reply["deleted"] == [str(old)]
    assert not old.exists()


# -- settings -----------------------------------------------------------------------


def test_settings_persist_across_a_restart(corral_home):
    with corral.connect(no_daemon=True, plugins=[logrotate]) as pm:
        shown = pm.call("logrotate_show")
        assert shown["settings"] == {
            "max_size": 10 * 1024 * 1024,
            "retain": 30,
            "compress": False,
            "date_format": "YYYY-MM-DD_HH-mm-ss",
            "rotate_interval": "0 0 * * *",
            "rotate_module": True,
            "worker_interval": 30.0,
        }
        assert shown["set"] == []
        reply = pm.call("logrotate_set", key="max_size", value="20M")
        assert reply["key"] == "max_size" and reply["settings"]["max_size"] == 20 * 1024**2
        pm.call("logrotate_set", key="dateFormat", value="YYYY-MM-DD")
        pm.call("logrotate_set", key="retain", value=7)
    stored = json.loads((corral_home / "logrotate.json").read_text())
    assert stored == {"date_format": "YYYY-MM-DD", "max_size": 20971520, "retain": 7}
    with corral.connect(no_daemon=True, plugins=[logrotate]) as pm:
        shown = pm.call("logrotate_show")
    assert shown["settings"]["max_size"] == 20971520
    assert shown["settings"]["retain"] == 7
    assert shown["settings"]["date_format"] == "YYYY-MM-DD"
    assert shown["set"] == ["date_format", "max_size", "retain"]


def test_a_bad_settings_file_keeps_the_defaults_and_says_so(corral_home):
    (corral_home / "logrotate.json").write_text('{"retain": 3, "max_sise": "1M", "compress": 2}')
    with corral.connect(no_daemon=True, plugins=[logrotate]) as pm:
        shown = pm.call("logrotate_show")
    assert shown["settings"]["retain"] == 3
    assert shown["settings"]["compress"] is False
    log = (corral_home / "corral.log").read_text()
    assert "did you mean 'max_size'?" in log
    assert "logrotate compress must be true or false, got 2" in log


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_sise", "1M", "unknown logrotate setting 'max_sise' (did you mean 'max_size'?)"),
        ("max_size", "1.5M", "logrotate max_size must be bytes"),
        ("retain", "-1", "retain must be an integer >= 0 or 'all'"),
        ("compress", "yes", "logrotate compress must be true or false, got 'yes'"),
        ("date_format", "YYYY/MM", "without '/'"),
        ("date_format", "YYYY-QQQ", "logrotate date_format 'YYYY-QQQ' has an unknown token"),
        ("rotate_interval", "every day", "must be a cron expression"),
        ("rotate_interval", "0 0 0 * * * 2030", "must be a cron expression"),
        ("worker_interval", "0", "worker_interval must be a number of seconds > 0"),
    ],
)
def test_bad_settings_are_refused(pm, key, value, message):
    with pytest.raises(OptionError) as caught:
        pm.call("logrotate_set", key=key, value=value)
    assert message in str(caught.value)


def test_parse_setting_accepts_pm2_spellings():
    assert parse_setting("pm2-logrotate:max_size", "10M") == ("max_size", 10 * 1024**2)
    assert parse_setting("logrotate:rotateInterval", "0 0 * * *") == (
        "rotate_interval",
        "0 0 * * *",
    )
    assert parse_setting("rotate_interval", "off") == ("rotate_interval", None)
    assert parse_setting("rotate_interval", "@daily") == ("rotate_interval", "@daily")
    assert parse_setting("retain", "ALL") == ("retain", "all")
    assert parse_setting("compress", True) == ("compress", True)
    assert parse_setting("workerInterval", "30") == ("worker_interval", 30.0)


# -- naming -------------------------------------------------------------------------


def test_rotated_names_and_their_order(tmp_path):
    path = tmp_path / "app-out.log"
    path.write_text("")
    first, n = rotated_name(path, "2026-01-02_03-04-05")
    assert (first.name, n) == ("app-out__2026-01-02_03-04-05.log", 0)
    first.write_text("a")
    second, n = rotated_name(path, "2026-01-02_03-04-05")
    assert (second.name, n) == ("app-out__2026-01-02_03-04-05__1.log", 1)
    names = [f"app-out__2026-01-02_03-04-05__{i}.log" for i in (2, 10, 9)] + [second.name]
    for name in names:
        (tmp_path / name).write_text("b")
    same = 1_700_000_000_000_000_000  # every file modified at once: the name decides
    for p in tmp_path.iterdir():
        os.utime(p, ns=(same, same))
    (tmp_path / "app-out__2026-01-02_03-04-05__2.log").rename(
        tmp_path / "app-out__2026-01-02_03-04-05__2.log.gz"
    )
    (tmp_path / "app-out-other.log").write_text("")
    (tmp_path / "app-error__2026-01-02_03-04-05.log").write_text("")
    assert [p.name for p in rotated_files(path)] == [
        "app-out__2026-01-02_03-04-05.log",
        "app-out__2026-01-02_03-04-05__1.log",
        "app-out__2026-01-02_03-04-05__2.log.gz",
        "app-out__2026-01-02_03-04-05__9.log",
        "app-out__2026-01-02_03-04-05__10.log",
    ]
    later = same + 10**9
    os.utime(first, ns=(later, later))  # modified last: the newest whatever its name
    assert rotated_files(path)[-1] == first
    # a name without .log keeps its whole name as the stem
    plain = tmp_path / "out.txt"
    assert rotated_name(plain, "D")[0].name == "out.txt__D"


# -- the CLI ------------------------------------------------------------------------


def cli(pm: corral.Client, *args: str) -> str:
    import click

    group = click.Group("corral")
    logrotate.corral_cli(group)
    result = CliRunner().invoke(group, list(args), obj=pm)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli(pm, tmp_path):
    assert cli(pm, "logrotate", "set", "max_size", "1M") == "max_size: 1048576\n"
    shown = cli(pm, "logrotate", "show")
    assert "max_size: 1048576\n" in shown
    assert "retain: 30  (default)\n" in shown
    assert json.loads(cli(pm, "logrotate", "show", "--json"))["settings"]["max_size"] == 1048576
    path = ticker(pm, tmp_path, "tick")
    pm.stop("tick")
    out = cli(pm, "logrotate", "rotate", "0")
    [rotated] = rotated_files(path)
    assert out == f"rotated {rotated}\n"
    out = cli(pm, "logrotate", "flush", "tick", "--all")
    assert f"flushed {path}\n" in out and f"deleted {rotated}\n" in out
    assert not rotated.exists()


def test_cli_flush_all_deletes_rotated_files(corral_home, tmp_path):
    import subprocess
    import sys

    import corral

    script = tmp_path / "once.py"
    script.write_text("print('hello', flush=True)\n")
    client = corral.connect(plugins=["logrotate"])
    try:
        info = client.start(str(script), {"autorestart": False})[0]
        wait_for(lambda: client.describe(0)[0].status == "stopped")
        client.call("logrotate_rotate", target=0)
        log_dir = Path(info.out_log).parent
        wait_for(lambda: any("__" in p.name for p in log_dir.iterdir()))
        done = subprocess.run(
            [sys.executable, "-m", "corral", "flush", "0", "--all"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "deleted" in done.stdout
        assert not any("__" in p.name for p in log_dir.iterdir())
    finally:
        client.kill_daemon()
