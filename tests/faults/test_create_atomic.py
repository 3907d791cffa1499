"""Creating processes is all or nothing: start of a batch, and scale.

A log file that cannot be opened is an OptionError naming its option and the
path, never an internal error; the apps of the batch that came before it (and
the instances of the same app) are removed again, their processes stopped and
their log files closed. ``scale`` refuses a count past the daemon's file
descriptors, as ``start`` does, and adds all of its new instances or none.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
from pathlib import Path

import pytest

from corral.errors import OptionError
from corral.testing import apps_of
from tests.core.test_daemon import alive, apps_snapshot

SLEEP = shutil.which("sleep") or "/bin/sleep"


def bad_log_path(tmp_path: Path, kind: str) -> str:
    """A path that passes the up-front checks but cannot be opened."""
    if kind == "proc":
        return "/proc/corral-test.log"  # no file can be made in procfs, not even by root
    link = tmp_path / "dangling.log"  # a link into a directory that does not exist
    link.symlink_to(tmp_path / "missing" / "out.log")
    return str(link)


def held_open(*directories: Path) -> list[str]:
    """Files under ``directories`` this process (the in-process daemon) holds open."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tuple(f"{d}/" for d in directories)):
            held.append(target)
    return held


def app_children(keep: set[int]) -> list[int]:
    """Live apps of this process's in-process daemon (its children and its spawner's)
    other than ``keep``."""
    return [p.pid for p in apps_of(os.getpid()) if p.pid not in keep and alive(p.pid)]


def fail_as(pm, field: str, path: str, start: object) -> None:
    with pytest.raises(OptionError) as caught:
        start()
    message = str(caught.value)
    assert caught.value.field == field, message
    assert field in message and path in message and "\n" not in message, message
    assert "internal error" not in message


@pytest.mark.parametrize("kind", ["dangling-link", "proc"])
@pytest.mark.parametrize("field", ["out_file", "error_file", "log_file"])
def test_a_batch_with_a_log_file_that_cannot_be_opened_starts_nothing(
    corral_daemon, corral_home: Path, tmp_path: Path, field: str, kind: str
) -> None:
    pm = corral_daemon()
    pm.start(SLEEP, {"name": "before", "args": ["3600"]})
    before = apps_snapshot(pm)
    bad = bad_log_path(tmp_path, kind)
    first = {"name": "first", "script": SLEEP, "args": ["3600"]}
    first["out_file"] = str(tmp_path / "first.log")
    config = tmp_path / "ecosystem.json"
    second = {"name": "second", "script": SLEEP, "args": ["3600"], field: bad}
    config.write_text(json.dumps({"apps": [first, second]}))

    fail_as(pm, field, bad, lambda: pm.start(str(config)))
    assert apps_snapshot(pm) == before  # "first" was started, then removed
    assert app_children({before[0][2]}) == []
    # none stays open, not those opened ahead of the failing one (a log file is held only
    # once written: "before" writes nothing)
    assert held_open(tmp_path, corral_home / "logs") == []


def test_the_instances_of_one_app_start_all_or_none(corral_daemon, tmp_path: Path) -> None:
    """Each instance logs to ``multi-<pm_id>.log``; the second one's is a directory."""
    pm = corral_daemon()
    pm.start(SLEEP, {"name": "before", "args": ["3600"]})
    before = apps_snapshot(pm)
    (tmp_path / f"multi-{len(before) + 1}.log").mkdir()
    options = {"name": "multi", "args": ["3600"], "instances": 3}
    options["out_file"] = str(tmp_path / "multi.log")

    fail_as(pm, "out_file", f"multi-{len(before) + 1}.log", lambda: pm.start(SLEEP, options))
    assert apps_snapshot(pm) == before
    assert app_children({before[0][2]}) == []
    assert held_open(tmp_path) == []


def test_scale_adds_all_of_its_instances_or_none(corral_daemon, tmp_path: Path) -> None:
    pm = corral_daemon()
    options = {"name": "web", "args": ["3600"], "instances": 2}
    options["out_file"] = str(tmp_path / "web.log")
    pm.start(SLEEP, options)  # pm_ids 0 and 1
    before = apps_snapshot(pm)
    (tmp_path / "web-3.log").mkdir()  # the second instance scale would add

    fail_as(pm, "out_file", "web-3.log", lambda: pm.scale("web", 4))
    assert apps_snapshot(pm) == before
    assert app_children({pid for _, _, pid, _, _ in before}) == []
    assert held_open(tmp_path) == []  # web-0 and web-1 wrote nothing: no file held
    assert len(pm.scale("web", 3)) == 3  # the one that can log is added as usual


def test_scale_checks_the_file_descriptor_budget(corral_daemon) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        pytest.skip("no limit on file descriptors to go past")
    pm = corral_daemon()
    pm.start(SLEEP, {"name": "web", "args": ["3600"]})
    before = apps_snapshot(pm)
    with pytest.raises(OptionError) as caught:
        pm.scale("web", soft)  # 8 descriptors an instance: far past the limit
    assert caught.value.field == "count"
    assert "file descriptors" in str(caught.value) and "'web'" in str(caught.value)
    assert apps_snapshot(pm) == before


@pytest.mark.parametrize("stream", ["out", "error"])
def test_a_batch_whose_own_log_file_cannot_be_made_starts_nothing(
    corral_daemon, corral_home: Path, tmp_path: Path, stream: str
) -> None:
    """A start's files in ``$CORRAL_HOME/logs`` are made on a thread (logmaker) while the
    apps before them launch; one that cannot be made (a directory sits at its path)
    still fails the whole start with the option and the path named."""
    pm = corral_daemon()
    pm.start(SLEEP, {"name": "before", "args": ["3600"]})  # pm_id 0
    before = apps_snapshot(pm)
    apps = [{"name": f"a{i}", "script": SLEEP, "args": ["3600"]} for i in range(6)]
    blocked = corral_home / "logs" / f"a4-{stream}.log"
    blocked.mkdir()
    config = tmp_path / "ecosystem.json"
    config.write_text(json.dumps({"apps": apps}))
    field = "out_file" if stream == "out" else "error_file"
    fail_as(pm, field, str(blocked), lambda: pm.start(str(config)))
    assert apps_snapshot(pm) == before  # a0..a3 were launched, then removed
    assert app_children({before[0][2]}) == []
    assert held_open(tmp_path, corral_home / "logs") == []
    blocked.rmdir()
    assert [p.status for p in pm.start(str(config))] == ["online"] * 6
