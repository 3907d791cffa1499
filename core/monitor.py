"""CPU and memory of whole process trees, sampled only when someone asks.

One scan of the process table per sample builds the parent map, so listing
100 apps costs one pass over ``/proc`` rather than one per app.
"""

from __future__ import annotations

from collections import defaultdict

import psutil


class TreeSampler:
    """Keeps ``psutil.Process`` objects between calls so ``cpu_percent`` has a baseline."""

    def __init__(self) -> None:
        self._procs: dict[int, psutil.Process] = {}

    def sample(self, roots: list[int]) -> dict[int, tuple[int, float]]:
        """``{root_pid: (rss_bytes, cpu_percent)}`` summed over each root's descendants."""
        if not roots:
            return {}
        children = self._children_map()
        seen: set[int] = set()
        result = {}
        for root in roots:
            rss, cpu = 0, 0.0
            for pid in _walk(root, children):
                seen.add(pid)
                figures = self._figures(pid)
                if figures is not None:
                    rss += figures[0]
                    cpu += figures[1]
            result[root] = (rss, round(cpu, 1))
        for pid in list(self._procs):
            if pid not in seen:
                del self._procs[pid]
        return result

    def descendants(self, root: int) -> list[int]:
        """Every pid under ``root`` (not ``root`` itself), deepest last."""
        return [pid for pid in _walk(root, self._children_map()) if pid != root]

    def _figures(self, pid: int) -> tuple[int, float] | None:
        proc = self._procs.get(pid)
        try:
            if proc is None:
                proc = self._procs[pid] = psutil.Process(pid)
            with proc.oneshot():
                return proc.memory_info().rss, proc.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(pid, None)
            return None

    @staticmethod
    def _children_map() -> dict[int, list[int]]:
        children: dict[int, list[int]] = defaultdict(list)
        for proc in psutil.process_iter(["ppid"]):
            ppid = proc.info.get("ppid")
            if ppid is not None:
                children[ppid].append(proc.pid)
        return children


def _walk(root: int, children: dict[int, list[int]]) -> list[int]:
    order, stack = [], [root]
    while stack:
        pid = stack.pop()
        order.append(pid)
        stack.extend(children.get(pid, ()))
    return order
