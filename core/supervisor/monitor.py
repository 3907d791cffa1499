"""CPU and memory of whole process trees, sampled only when someone asks.

On Linux the tree is walked through ``/proc/<pid>/task/<tid>/children`` and
each process costs one read of ``/proc/<pid>/stat``, so listing 100 apps
reads a few hundred small files and never scans the whole process table.
Elsewhere psutil does the same job more slowly.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict

_LINUX = sys.platform.startswith("linux") and os.path.exists("/proc/self/task")
_TICKS = os.sysconf("SC_CLK_TCK") if _LINUX else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if _LINUX else 4096


class TreeSampler:
    """Remembers each pid's last CPU time so the next sample can give a percentage."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, float]] = {}  # pid -> (cpu seconds, wall time)
        self._psutil: dict[int, object] = {}

    def sample(self, roots: list[int]) -> dict[int, tuple[int, float]]:
        """``{root_pid: (rss_bytes, cpu_percent)}`` summed over each root's descendants."""
        if not roots:
            return {}
        if not _LINUX:
            return self._sample_psutil(roots)
        now = time.monotonic()
        seen: dict[int, tuple[float, float]] = {}
        result = {}
        for root in roots:
            rss, cpu = 0, 0.0
            stack = [root]
            while stack:  # the tree, each pid's stat read once (it also gives its threads)
                pid = stack.pop()
                figures = _proc_stat(pid)
                if figures is None:
                    continue
                pages, seconds, threads = figures
                rss += pages * _PAGE
                cpu += self._percent(pid, seconds, now)
                seen[pid] = (seconds, now)
                stack.extend(_proc_children(pid, threads))
            result[root] = (rss, round(cpu, 1))
        self._last = seen
        return result

    def _percent(self, pid: int, seconds: float, now: float) -> float:
        last = self._last.get(pid)
        if last is None or now <= last[1]:
            return 0.0
        return max(0.0, (seconds - last[0]) / (now - last[1]) * 100)

    def descendants(self, root: int) -> list[int]:
        """Every pid under ``root`` (not ``root`` itself)."""
        children = _proc_children if _LINUX else _psutil_children_map().get
        return [pid for pid in _walk(root, lambda p: children(p) or []) if pid != root]

    def _sample_psutil(self, roots: list[int]) -> dict[int, tuple[int, float]]:
        import psutil  # deferred: psutil (~10 ms), only where there is no /proc

        children = _psutil_children_map()
        result = {}
        alive: dict[int, object] = {}
        for root in roots:
            rss, cpu = 0, 0.0
            for pid in _walk(root, lambda p: children.get(p, [])):
                try:
                    proc = self._psutil.get(pid) or psutil.Process(pid)
                    with proc.oneshot():  # type: ignore[attr-defined]
                        rss += proc.memory_info().rss  # type: ignore[attr-defined]
                        cpu += proc.cpu_percent(None)  # type: ignore[attr-defined]
                    alive[pid] = proc
                except psutil.Error:
                    continue
            result[root] = (rss, round(cpu, 1))
        self._psutil = alive
        return result


def _walk(root: int, children_of) -> list[int]:  # type: ignore[no-untyped-def]
    order, stack = [], [root]
    while stack:
        pid = stack.pop()
        order.append(pid)
        stack.extend(children_of(pid))
    return order


def _read(path: str) -> bytes:
    """A small /proc file in one read (os calls: a third of open()'s cost)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 4096)
        while len(data) % 4096 == 0 and data:  # a long children list comes in pieces
            more = os.read(fd, 4096)
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)


def _proc_children(pid: int, threads: int = 0) -> list[int]:
    """The children of ``pid``: of its one thread's list when ``threads`` says 1."""
    if threads == 1:
        try:
            return [int(x) for x in _read(f"/proc/{pid}/task/{pid}/children").split()]
        except OSError:
            return []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    kids: list[int] = []
    for tid in tasks:
        try:
            kids.extend(int(x) for x in _read(f"/proc/{pid}/task/{tid}/children").split())
        except OSError:
            continue
    return kids


def _proc_stat(pid: int) -> tuple[int, float, int] | None:
    """``(rss_pages, cpu_seconds, threads)`` of one process, or None if gone or a zombie."""
    try:
        fields = _read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == b"Z":
        return None
    # after the command: state(0) ppid(1) ... utime(11) stime(12) ... num_threads(17) rss(21)
    return int(fields[21]), (int(fields[11]) + int(fields[12])) / _TICKS, int(fields[17])


def _psutil_children_map() -> dict[int, list[int]]:
    import psutil  # deferred: psutil (~10 ms), only where there is no /proc

    children: dict[int, list[int]] = defaultdict(list)
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            children[ppid].append(proc.pid)
    return children


def start_time(pid: int | None) -> float | None:
    """When ``pid`` started (an opaque number): with the pid, it names one process for good."""
    if not pid:
        return None
    if _LINUX:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return float(f.read().rsplit(b")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            return None
    import psutil  # deferred: psutil (~10 ms), only where there is no /proc

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


Started = float | tuple[float, float] | list[float] | None  # a start time, or a bracket


def boot_ticks() -> float | None:
    """Now, on the clock of ``start_time`` (Linux: clock ticks since boot), or None.

    Read just before and just after a fork, it brackets the child's start time
    without reading ``/proc/<pid>/stat``, which blocks until the child's exec is
    done (2-4 ms for a Python child, on the daemon's loop).
    """
    if not _LINUX:
        return None
    return float(time.clock_gettime_ns(time.CLOCK_BOOTTIME) * _TICKS // 1_000_000_000)


def same_process(pid: int | None, started: Started) -> bool:
    """``pid`` is still the process that started at ``started`` (a time or a bracket)."""
    if not pid or started is None:
        return False
    actual = start_time(pid)
    if actual is None:
        return False
    if isinstance(started, (tuple, list)):
        low, high = started
        return low <= actual <= high
    return actual == started


def ancestors(pid: int, limit: int = 16) -> list[int]:
    """The parent, grandparent, ... of ``pid`` (Linux), nearest first."""
    chain: list[int] = []
    while _LINUX and len(chain) < limit:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                pid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        if pid <= 1:
            break
        chain.append(pid)
    return chain
