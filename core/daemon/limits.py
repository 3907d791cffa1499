"""The system limits a start must fit in, checked before anything starts.

A start (a config file's apps, ``-i N`` instances, ``scale``) that would need more
file descriptors than the daemon's ``RLIMIT_NOFILE`` leaves, or more processes
than ``kernel.pid_max``, ``kernel.threads-max``, ``RLIMIT_NPROC`` or a cgroup's
``pids.max`` leave room for, is refused with one line naming the limit, its value,
what the start needs and the fix; nothing starts. At its start the daemon raises
its own soft ``RLIMIT_NOFILE`` to the hard limit (node does the same for PM2's
daemon); its apps inherit it.
"""

from __future__ import annotations

import os
import resource
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from corral.errors import OptionError
from corral.supervisor import stdin
from corral.supervisor.logs import open_log_limit

# What one instance holds open in the daemon, measured (1,000 apps of `sh -c 'exec
# sleep'` on a daemon with the default plugins: 4.00 each, /work/notes/fds.md): its
# stdout and stderr pipes, its channel socket, its pidfd (none for the apps the spawner
# forks, from SPAWNER_FROM apps on: 3.00 each; counted, the spawner may die). Its log
# files are open only while written, at most open_log_limit() of them in all
# (corral.supervisor.logs), and its stdin pipe only while a sent line waits
# (corral.supervisor.stdin), unless the daemon cannot reopen it (root without
# CAP_SYS_PTRACE): then one more (fds_per_instance()).
FDS_PER_INSTANCE = 4
# A spawn's short-lived descriptors (the child's ends of its pipes and socket, the
# exec check), clients, a state write, the fd reserve's refills; the open log files
# are counted apart (open_log_limit())
SPARE_FDS = 64
SPARE_TASKS = 64  # processes the rest of the machine may start meanwhile


def fds_per_instance() -> int:
    """What one instance holds open in this daemon (see FDS_PER_INSTANCE)."""
    return FDS_PER_INSTANCE + (0 if stdin.reopens() else 1)


def raise_fd_limit() -> tuple[int, int]:
    """Soft ``RLIMIT_NOFILE`` up to the hard limit, if it is not there: the limits after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # an unlimited hard limit past fs.nr_open
            try:
                nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
                resource.setrlimit(resource.RLIMIT_NOFILE, (nr_open, hard))
            except (ValueError, OSError):
                pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def check_start(apps: Iterable[Any], procs: Iterable[Any]) -> None:
    """A batch of prepared apps (``name``, ``count``, ``options``) against the apps the
    daemon has: the instances it would add must fit (:func:`check_room`)."""
    have = Counter(p.name for p in procs)
    instances = fds = most = 0
    for app in apps:
        new = app.count if app.options.get("force") else max(app.count - have[app.name], 0)
        instances += new
        fds += new * fds_per_instance()
        most = max(most, new)
    if most > 1:  # one app's `instances` past the limits alone: that option is the fix
        check_room(most, field="instances")
    check_room(instances, field="apps", fds=fds)


def check_room(instances: int, field: str = "instances", fds: int | None = None) -> None:
    """Refuse (OptionError, one line) ``instances`` new processes the limits cannot hold."""
    if instances <= 0:
        return
    problem = _fd_problem(fds if fds is not None else instances * fds_per_instance(), instances)
    problem = problem or _task_problem(instances)
    if problem:
        raise OptionError(f"{problem}; nothing was started", field=field)


def _fd_problem(needed: int, instances: int) -> str | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    in_use = _count("/proc/self/fd") or _count("/dev/fd")
    # the log files may all be open at once (some are already, in in_use: counted twice)
    left = soft - in_use - SPARE_FDS - open_log_limit()
    if needed <= left:
        return None
    enough = _round_up(in_use + SPARE_FDS + open_log_limit() + needed)
    return (
        f"{instances:,} new instances need {needed:,} file descriptors in the daemon "
        f"({fds_per_instance()} each), and its limit RLIMIT_NOFILE (open files) is {soft:,} "
        f"with {in_use:,} in use: raise it to {enough:,} or more (`prlimit --pid {os.getpid()} "
        f"--nofile={enough}:{enough}` on this daemon, `ulimit -n {enough}` before it starts, "
        f"LimitNOFILE={enough} in its systemd unit), or start fewer"
    )


def _task_problem(instances: int) -> str | None:
    tasks = _tasks()
    if tasks is not None:
        for name in ("pid_max", "threads-max"):
            limit = _read_int(f"/proc/sys/kernel/{name}")
            if limit is not None and tasks + instances + SPARE_TASKS > limit:
                enough = _round_up(tasks + instances + SPARE_TASKS)
                return (
                    f"{instances:,} new processes need room under kernel.{name}, which is "
                    f"{limit:,} with {tasks:,} tasks running: raise it (`sysctl -w "
                    f"kernel.{name}={enough}`), or start fewer"
                )
    nproc, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if nproc != resource.RLIM_INFINITY and os.getuid() != 0:  # root is exempt
        mine = _tasks_of(os.getuid())
        if mine + instances + SPARE_TASKS > nproc:
            enough = _round_up(mine + instances + SPARE_TASKS)
            return (
                f"{instances:,} new processes need room under RLIMIT_NPROC (max user "
                f"processes), which is {nproc:,} with {mine:,} in use by this user: raise it "
                f"(`ulimit -u {enough}` before the daemon starts, LimitNPROC={enough} in its "
                "systemd unit), or start fewer"
            )
    for group, limit, current in _cgroup_pids():
        if current + instances + SPARE_TASKS > limit:
            enough = _round_up(current + instances + SPARE_TASKS)
            return (
                f"{instances:,} new processes need room under the pids.max of cgroup {group}, "
                f"which is {limit:,} with {current:,} in it: raise it (TasksMax={enough} in "
                "the daemon's systemd unit), or start fewer"
            )
    return None


def _tasks() -> int | None:
    """Tasks (threads) running on the machine: what takes pids and counts to threads-max."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
    except (OSError, IndexError, ValueError):
        return None


def _tasks_of(uid: int) -> int:
    total = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    total += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                continue
    return total


def _cgroup_pids() -> list[tuple[str, int, int]]:
    """(cgroup, pids.max, pids.current) of this process's cgroup v2 and its ancestors."""
    try:
        line = next(x for x in Path("/proc/self/cgroup").read_text().splitlines() if x[:3] == "0::")
    except (OSError, StopIteration):
        return []
    found = []
    group = Path(line[3:])
    while True:
        where = Path("/sys/fs/cgroup") / group.relative_to("/")
        limit = _read_int(where / "pids.max")
        current = _read_int(where / "pids.current")
        if limit is not None and current is not None:
            found.append((str(group), limit, current))
        if group == group.parent:
            return found
        group = group.parent


def _read_int(path: str | Path) -> int | None:
    try:
        return int(Path(path).read_text().strip())  # "max" is no limit: ValueError
    except (OSError, ValueError):
        return None


def _count(directory: str) -> int:
    try:
        return len(os.listdir(directory))
    except OSError:
        return 0


def _round_up(value: int) -> int:
    """A round figure above ``value`` for the fix to name (1,000s, or 10,000s past 10,000)."""
    step = 10_000 if value > 10_000 else 1_000
    return (value // step + 1) * step


__all__ = ["FDS_PER_INSTANCE", "check_room", "check_start", "fds_per_instance", "raise_fd_limit"]
