"""The cgroups plugin: kernel limits that bite real apps, on this machine's cgroups."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import corral
from corral.plugins import cgroups
from corral.plugins.cgroups import v1
from corral.testing import wait_for, wait_for_event
from tests.conftest import PY, out_lines, python_app

CAN = all(v1.why_not(c) is None for c in v1.CONTROLLERS)
needs_limits = pytest.mark.skipif(not CAN, reason="no v1 memory/pids/cpu cgroups as root here")

HOG = """\
import sys, time
print("allocating", flush=True)
data = bytearray(int(sys.argv[1]) * 1024 * 1024)  # written: resident
for i in range(0, len(data), 4096):
    data[i] = 1
print("survived", flush=True)
time.sleep(3600)
"""

# A bounded fork bomb: once it sees pids.max in place in its own cgroup, it tries
# 300 children (each sleeps) and counts the forks the kernel refused.
BOMB = """\
import os, sys, time
path = next(l.split(":", 2)[2].strip() for l in open("/proc/self/cgroup") if ":pids:" in l)
limit = open(f"/sys/fs/cgroup/pids{path}/pids.max").read().strip()
print(f"limit {limit}", flush=True)
ok = refused = 0
for _ in range(300):
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        ok += 1
    except OSError:
        refused += 1
print(f"forked {ok} refused {refused}", flush=True)
time.sleep(3600)
"""

SPIN = """\
import os, time
start, cpu0 = time.monotonic(), time.process_time()
while time.monotonic() - start < 1.5:
    pass
print(f"share {(time.process_time() - cpu0) / (time.monotonic() - start):.3f}", flush=True)
time.sleep(3600)
"""


@pytest.fixture
def pm(corral_daemon: Callable[..., corral.Client]) -> corral.Client:
    return corral_daemon(plugins=[cgroups])


def line_of(pm: corral.Client, name: str, prefix: str, timeout: float = 15) -> str:
    def find() -> str | None:
        return next((x for x in out_lines(pm.describe(name)[0]) if x.startswith(prefix)), None)

    return str(wait_for(find, timeout=timeout, what=f"{name} printed {prefix!r}"))


def app(tmp_path: Path, name: str, body: str, *args: str, **options: object) -> dict:
    return {
        "name": name,
        "script": python_app(tmp_path, f"{name}.py", body),
        "exec_interpreter": PY,
        "args": list(args),
        **options,
    }


@needs_limits
def test_memory_max_bites_and_the_oom_is_said(pm, tmp_path):
    (info,) = pm.start(app(tmp_path, "hog", HOG, "200", memory_max="50M", autorestart=False))
    shown = info.pm2_env["cgroup_status"]
    memory = Path(next(p for p in shown["paths"] if "/memory/" in p))
    assert (memory / "memory.limit_in_bytes").read_text().strip() == str(50 * 1024**2)
    event = wait_for_event(pm, "oom", "hog")
    words = f"memory_max 50M reached: the kernel's OOM killer ended pid {info.pid}"
    assert event.reason.startswith(words)
    exited = pm.events.matching("exit", "hog")
    assert exited and "SIGKILL" in exited[0].reason
    assert "survived" not in out_lines(pm.describe("hog")[0])
    wait_for(lambda: not memory.exists(), what="its cgroup removed")


@needs_limits
def test_pids_max_stops_a_fork_bomb(pm, tmp_path):
    pm.start(app(tmp_path, "bomb", BOMB, pids_max=20, kill_timeout=500))
    assert line_of(pm, "bomb", "limit") == "limit 20"  # in place before the first fork
    words = line_of(pm, "bomb", "forked", timeout=30).split()
    forked, refused = int(words[1]), int(words[3])
    assert forked <= 19 and refused >= 281  # the app itself is one of the 20
    pm.delete("bomb")


@needs_limits
def test_cpu_max_throttles(pm, tmp_path):
    pm.start(app(tmp_path, "spin", SPIN, cpu_max="20%"))
    share = float(line_of(pm, "spin", "share").split()[1])
    assert share < 0.35  # 20% of a core, and the interpreter's start before the loop


@needs_limits
def test_an_app_without_limits_gets_no_cgroup(pm, tmp_path):
    (info,) = pm.start(app(tmp_path, "free", HOG, "1"))
    assert "cgroup_status" not in info.pm2_env
    assert pm.call("cgroups") == {}


@needs_limits
def test_limits_follow_each_restart_and_leave_nothing(pm, tmp_path):
    (info,) = pm.start(app(tmp_path, "again", HOG, "1", pids_max=50))
    first = Path(info.pm2_env["cgroup_status"]["paths"][0])
    (again,) = pm.restart("again")
    second = Path(again.pm2_env["cgroup_status"]["paths"][0])
    assert first != second and (second / "pids.max").read_text().strip() == "50"
    wait_for(lambda: not first.exists(), what="the first run's cgroup removed")
    pm.delete("again")
    wait_for(lambda: not second.exists(), what="the second run's cgroup removed")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"cpu_max": "50"}, 'give a percentage of one CPU, e.g. "50%"'),
        ({"cpu_max": "0%"}, "give a percentage"),
        ({"pids_max": 0}, "from 1 to 4194304"),
        ({"pids_max": 10**20}, "from 1 to 4194304"),
        ({"cpu_max": "0.05%"}, "below the smallest quota"),
        ({"memory_max": 4096}, "at least 1M"),
        ({"memory_max": "1.5G"}, "memory_max must be"),
    ],
)
def test_a_bad_limit_is_refused_and_nothing_starts(pm, tmp_path, options, words):
    with pytest.raises(corral.OptionError, match=words):
        pm.start(app(tmp_path, "bad", HOG, "1", **options))
    assert pm.list() == []


def test_why_a_limit_cannot_be_set_is_said():
    assert v1.why_not("memory", {}, {}).startswith(("no cgroup memory controller", "this machine"))
    here = {"memory": Path("/sys/fs/cgroup/memory")}
    own = {"memory": "/"}
    if os.geteuid() == 0:
        assert v1.why_not("memory", here, own) is None
    else:
        assert "only a daemon run as root" in v1.why_not("memory", here, own)


def test_the_mount_table_is_read_as_the_kernel_writes_it(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "50 31 0:40 /docker/abc /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    assert v1.mounts(str(info)) == {
        "memory": Path("/sys/fs/cgroup/memory"),
        "pids": Path("/sys/fs/cgroup/pids"),
        "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
    }


@needs_limits
def test_an_escaped_grandchild_dies_with_the_app(pm, tmp_path):
    body = (
        "import os, subprocess, sys, time\n"
        "code = 'import os, time; os.setsid(); time.sleep(3600)'\n"
        "p = subprocess.Popen([sys.executable, '-c', code], env={}, start_new_session=True)\n"
        "print(f'grandchild {p.pid}', flush=True)\n"
        "time.sleep(3600)\n"
    )
    pm.start(app(tmp_path, "family", body, pids_max=10))
    grandchild = int(line_of(pm, "family", "grandchild").split()[1])
    assert psutil.pid_exists(grandchild)
    pm.stop("family")
    wait_for(
        lambda: (
            not psutil.pid_exists(grandchild)
            or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        ),
        what="the grandchild gone",
    )
    time.sleep(0.1)


@needs_limits
def test_a_dead_daemons_empty_cgroups_are_swept(corral_daemon):
    from corral.api import corral_home

    left = v1.Hierarchies(corral_home()).parent("pids") / "1-0-1"
    left.mkdir(parents=True)
    pm = corral_daemon(plugins=[cgroups])
    pm.list()
    wait_for(lambda: not left.exists(), what="the leftover cgroup swept")


def test_a_small_cpu_share_takes_a_longer_period():
    assert v1.cpu_files(0.5) == {"cpu.cfs_period_us": "1000000", "cpu.cfs_quota_us": "5000"}
    assert v1.cpu_files(150) == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "150000"}


@needs_limits
def test_memory_max_zero_is_no_limit_and_the_home_cgroups_go_with_the_daemon(pm, tmp_path):
    from corral.api import corral_home

    (info,) = pm.start(app(tmp_path, "nolimit", HOG, "1", memory_max=0))
    assert "cgroup_status" not in info.pm2_env
    pm.start(app(tmp_path, "limited", HOG, "1", pids_max=30))
    parent = v1.Hierarchies(corral_home()).parent("pids")
    assert parent.is_dir()
    assert pm.describe("limited")[0].pm2_env["cgroup_status"]["limits"] == {"pids_max": 30}
    pm.kill_daemon()
    assert not parent.exists()
