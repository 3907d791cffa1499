"""The compact form of ``list`` (``form="rows"``): each process's ``pm2_env`` fields as
one row of values, the field names once per shape, the environment only when asked.

Per process, a row ``[shape, value, ...]`` holds the fields that change only with
its options (then its environment, with ``env``), and a live row ``[pid, memory, cpu,
value, ...]`` its runtime fields (status, counters); together they are ``pm2_env``
without the environment and its copies; a shape is the two lists of field names,
``[[fixed, ...], [runtime, ...]]``. The row is encoded once per process and kept
while the objects it is made of (options, env, log paths, names) are the same
(they are replaced, never changed in place). Memory and CPU figures are sampled at most once
per :data:`SAMPLE_AGE` for this form (each pid's ``/proc`` files cost ~25 us here, the
bulk of a list of 1,000 apps); ``jlist`` and ``describe`` sample on every call.
"""

from __future__ import annotations

import json
import time
import weakref
from typing import TYPE_CHECKING, Any

from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.commands import Commands
    from corral.supervisor.process import ManagedProcess

SAMPLE_AGE = 1.0  # seconds a sample of the figures serves the compact list
_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


class RowCache:
    """One daemon's encoded fixed parts, by pm_id, its shapes, and when it last sampled
    its figures."""

    def __init__(self) -> None:
        # pm_id -> [process, key objects, encoded fixed row, the same with the env or
        # None until a list with env asks for it (the env is most of a record's bytes)]
        self.fixed: dict[int, list[Any]] = {}
        # (fixed names, runtime names) -> shape number
        self.shapes: dict[tuple[tuple[str, ...], tuple[str, ...]], int] = {}
        self.sampled_at = float("-inf")
        self.sampled: frozenset[int] = frozenset()  # the pids of that sample


_CACHES: weakref.WeakKeyDictionary[Commands, RowCache] = weakref.WeakKeyDictionary()


def encode(cmds: Commands, procs: list[ManagedProcess], with_env: bool) -> bytes:
    """The compact reply for ``procs`` (in that order), encoded: ``shapes`` (each
    ``[[fixed names], [runtime names]]``), ``rows`` (``[shape, value, ...]``, the fixed fields, then
    the env with ``env``) and ``live`` (``[pid, memory, cpu, value, ...]``, the
    runtime fields), one of each per process."""
    cache = _CACHES.get(cmds)
    if cache is None:
        cache = _CACHES[cmds] = RowCache()
    _sample(cmds, cache, procs)
    rows, live = [], []
    running = lifecycle.RUNNING_STATES
    for proc in procs:
        key, runtime = proc.list_parts()
        entry = cache.fixed.get(proc.pm_id)
        if entry is None or entry[0] is not proc or entry[1] != key:
            entry = _fixed(cache, proc, key, runtime)
        if not with_env:
            rows.append(entry[2])
        else:
            if entry[3] is None:
                entry[3] = f"{entry[2][:-1]},{_JSON.encode(proc.env)}]"
            rows.append(entry[3])
        memory, cpu = proc.monit if proc.state in running else (0, 0.0)
        live.append([proc.pid or 0, memory, cpu, *runtime.values()])
    if len(cache.fixed) > len(procs):  # deleted apps: their parts go
        present = {p.pm_id for p in procs}
        cache.fixed = {k: v for k, v in cache.fixed.items() if k in present}
    shapes = _JSON.encode(list(cache.shapes))
    env = "true" if with_env else "false"
    head = f'{{"env":{env},"shapes":{shapes},"rows":[{",".join(rows)}],"live":'
    return f"{head}{_JSON.encode(live)}}}".encode()


def _fixed(
    cache: RowCache, proc: ManagedProcess, key: tuple[Any, ...], runtime: dict[str, Any]
) -> list[Any]:
    """The fixed part of ``proc``'s row, encoded now and kept (the cache's entry)."""
    fields = proc.pm2_env(with_env=False)
    names = tuple(k for k in fields if k not in runtime)
    shape = cache.shapes.setdefault((names, tuple(runtime)), len(cache.shapes))
    values = _JSON.encode([shape, *(fields[k] for k in names)])
    entry = [proc, key, values, None]
    cache.fixed[proc.pm_id] = entry
    return entry


def _sample(cmds: Commands, cache: RowCache, procs: list[ManagedProcess]) -> None:
    """Fresh figures unless the last sample is younger than SAMPLE_AGE and covered
    every pid running now."""
    running = frozenset(p.pid for p in procs if p.pid and p.state in lifecycle.RUNNING_STATES)
    now = time.monotonic()
    if now - cache.sampled_at < SAMPLE_AGE and running <= cache.sampled:
        return
    cmds.sample(procs)
    cache.sampled_at, cache.sampled = now, running


__all__ = ["SAMPLE_AGE", "encode"]
