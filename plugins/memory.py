"""max_memory_restart: restart an app whose process tree grows past a memory limit.

Options (per app):

- ``max_memory_restart``: the limit, as PM2 writes it: bytes as an integer, or
  digits with ``K``, ``M`` or ``G`` (powers of 1024, uppercase, no decimals):
  ``150M``, ``1G``, ``512K``, ``268435456``. Unset or ``0``: no limit.
- ``memory_interval``: how often the app is sampled, in ms (default 1000,
  minimum 100; ``"2s"`` accepted). corral's own key: PM2 has none.

The figure is the resident set size (RSS) of the app's whole process tree, its
children included, where PM2 counts the main pid only. Sampling runs on one
background thread per daemon, never on the daemon's loop, and only while some online app
has a limit: with none, the thread sleeps on an event and costs nothing. On
Linux it reads ``/proc/<pid>/task/*/children`` and ``/proc/<pid>/stat``
directly (what psutil reads underneath, without its per-process objects);
elsewhere it uses psutil.

An app over its limit gets a graceful restart (SIGINT, SIGKILL after
``kill_timeout``; it counts in ``restart_time``), whose ``restart`` event
carries the reason with both figures: ``memory 61.2M over max_memory_restart
40M (64172032 > 41943040 bytes)``. One child is restarted once: while its
restart is pending, later samples of it are not acted on.

RPC: ``memory_stats`` -> ``{"<pm_id>": {"name", "pid", "rss", "limit",
"interval", "sampled_at"}}`` (``sampled_at`` in ms since the epoch), for
debugging: ``corral.connect().call("memory_stats")``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

import corral
from corral.api import TreeSampler

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

DEFAULT_INTERVAL_MS = 1000
MIN_INTERVAL_MS = 100
JOIN_TIMEOUT_S = 5.0
EARLY = 0.9  # of a tick: how early a sample may come to share a wake with the others
_UNITS = (("G", 1024**3), ("M", 1024**2), ("K", 1024))
STATE_KEY = "memory.watch"  # where each daemon keeps its MemoryWatch (DaemonAPI.state)


def format_bytes(n: int) -> str:
    """``41943040`` -> ``40M``, ``64172032`` -> ``61.2M``: PM2's units, one decimal when inexact."""
    for suffix, size in _UNITS:
        if n >= size:
            whole, rest = divmod(n, size)
            return f"{whole}{suffix}" if rest == 0 else f"{n / size:.1f}{suffix}"
    return f"{n}B"


def over_limit_reason(rss: int, limit: int) -> str:
    """The words of the restart event: both figures, readable and exact."""
    return (
        f"memory {format_bytes(rss)} over max_memory_restart {format_bytes(limit)} "
        f"({rss} > {limit} bytes)"
    )


@dataclass(frozen=True)
class Target:
    """One online child with a limit, as the sampling thread sees it."""

    pm_id: int
    name: str
    pid: int  # the root of the tree; a restart brings a new Target
    limit: int  # bytes
    interval: float  # seconds


class MemoryWatch:
    """The sampling thread and the table of children it samples.

    The table is written on the daemon's loop (from process events) and read
    by the thread, under one lock; the thread never touches daemon state, and
    hands an app over its limit back to the loop, which checks it is still
    the same child before asking for the restart. Each daemon has its own
    (:func:`memory_watch`), with its own thread, from :meth:`start` to :meth:`stop`.
    """

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.loop = daemon.loop
        self.running = False
        self.stopped = False
        self._lock = threading.Lock()
        self._targets: dict[int, Target] = {}  # pm_id -> target
        self._pending: set[int] = set()  # pids whose restart was asked for and not yet done
        self._stats: dict[int, dict[str, Any]] = {}  # pm_id -> last figures
        self._wake = threading.Event()
        self._stopping = False
        self._sampler = TreeSampler()  # our own: the daemon's is used on its loop
        self._thread = threading.Thread(target=self._run, name="corral-memory", daemon=True)

    # -- on the daemon's loop ----------------------------------------------

    def start(self) -> None:
        self.running = True
        for proc in self.daemon.processes():  # apps already running when the plugin came
            self.track(proc)
        self._thread.start()

    def stop(self) -> None:
        self.running, self.stopped = False, True
        self._stopping = True
        self._wake.set()
        self._thread.join(JOIN_TIMEOUT_S)

    def track(self, proc: Any) -> None:
        """Sample ``proc`` from now on if it is online with a limit; else forget it."""
        if not self.running:
            return
        limit = proc.options.get("max_memory_restart") or 0
        pid = proc.pid
        if not limit or pid is None or proc.state is not corral.ProcessState.ONLINE:
            self.forget(proc.pm_id)
            return
        interval_ms = proc.options.get("memory_interval") or DEFAULT_INTERVAL_MS
        target = Target(proc.pm_id, proc.name, pid, int(limit), interval_ms / 1000)
        with self._lock:
            old = self._targets.get(proc.pm_id)
            if old == target:
                return
            if old is not None and old.pid != pid:
                self._pending.discard(old.pid)
            self._targets[proc.pm_id] = target
        self._wake.set()

    def forget(self, pm_id: int) -> None:
        with self._lock:
            old = self._targets.pop(pm_id, None)
            self._stats.pop(pm_id, None)
            if old is not None:
                self._pending.discard(old.pid)

    def stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {str(pm_id): dict(figures) for pm_id, figures in sorted(self._stats.items())}

    def _over_limit(self, target: Target, rss: int) -> None:
        proc = self.daemon.process(target.pm_id)
        if proc is None or proc.pid != target.pid or proc.state is not corral.ProcessState.ONLINE:
            return  # the sample is of a child that is already gone
        with self._lock:
            if target.pid in self._pending:
                return
            self._pending.add(target.pid)
        reason = over_limit_reason(rss, target.limit)
        self.daemon.log.warning(
            "memory over limit",
            name=target.name,
            pm_id=target.pm_id,
            pid=target.pid,
            rss=rss,
            limit=target.limit,
        )
        future = self.daemon.request_restart(target.pm_id, reason)
        future.add_done_callback(lambda f: self._restart_done(target, f))

    def _restart_done(self, target: Target, future: Any) -> None:
        if future.cancelled() or future.exception() is None:
            return  # the new child's "online" event replaces the target
        self.daemon.log.error(
            "memory restart failed",
            name=target.name,
            pm_id=target.pm_id,
            error=f"{type(future.exception()).__name__}: {future.exception()}",
        )
        with self._lock:
            self._pending.discard(target.pid)  # the next sample may try again

    # -- on the sampling thread --------------------------------------------

    def _run(self) -> None:
        due: dict[int, float] = {}  # pid -> monotonic time of its next sample
        tick, next_tick = 0.0, 0.0  # one wake per smallest interval samples every app due
        while not self._stopping:
            with self._lock:
                targets = list(self._targets.values())
            if not targets:
                due, tick = {}, 0.0
                self._wake.wait()  # no app with a limit: sleep until one comes
                self._wake.clear()
                continue
            now = time.monotonic()
            due = {t.pid: due.get(t.pid, now) for t in targets}  # a new child: sample now
            smallest = min(t.interval for t in targets)
            if smallest != tick:  # the first app, or one with a shorter interval came or went
                next_tick = min(next_tick, now + smallest) if tick else now
                tick = smallest
            if now >= next_tick:
                # an app due before the next tick goes now, a little early rather
                # than late or in a wake of its own: apps started at different
                # moments fall into step after their first sample
                ready = [t for t in targets if due[t.pid] <= now + tick * EARLY]
                next_tick = max(next_tick + tick, now + tick / 2)
            else:
                ready = [t for t in targets if due[t.pid] <= now]  # new ones, between ticks
            if ready:
                self._sample(ready)
                for t in ready:
                    due[t.pid] = now + t.interval
            self._wake.wait(max(0.0, next_tick - time.monotonic()))
            self._wake.clear()

    def _sample(self, targets: list[Target]) -> None:
        try:
            figures = self._sampler.sample([t.pid for t in targets])
        except Exception as exc:  # never let the thread die of one odd /proc read
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                self.loop.call_soon_threadsafe(self._log_error, exc)
            return
        at = int(time.time() * 1000)
        over = []
        with self._lock:
            for t in targets:
                rss = figures.get(t.pid, (0, 0.0))[0]
                if self._targets.get(t.pm_id) != t:
                    continue  # forgotten or replaced while we sampled
                self._stats[t.pm_id] = {
                    "name": t.name,
                    "pid": t.pid,
                    "rss": rss,
                    "limit": t.limit,
                    "interval": round(t.interval * 1000),
                    "sampled_at": at,
                }
                if rss > t.limit and t.pid not in self._pending:
                    over.append((t, rss))
        for t, rss in over:
            try:
                self.loop.call_soon_threadsafe(self._over_limit, t, rss)
            except RuntimeError:  # the loop is closed: the daemon is gone
                self._stopping = True
                return

    def _log_error(self, exc: BaseException) -> None:
        self.daemon.log.error("memory sample failed", error=f"{type(exc).__name__}: {exc}")


# -- hooks ---------------------------------------------------------------------


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "max_memory_restart",
            "bytes",
            help="restart when the app's process tree uses more memory than this "
            "(bytes, or 150M, 1G, 512K: powers of 1024)",
        ),
        corral.Option(
            "memory_interval",
            "ms",
            DEFAULT_INTERVAL_MS,
            minimum=MIN_INTERVAL_MS,
            help="how often max_memory_restart samples the app, in ms (corral's own key)",
        ),
    ]


def memory_watch(daemon: Any) -> MemoryWatch:
    """The :class:`MemoryWatch` of ``daemon`` (a ``corral.api.DaemonAPI``), made on first
    use: two daemons in one process each sample their own apps on their own thread."""
    return daemon.state(STATE_KEY, lambda: MemoryWatch(daemon))


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    if memory_watch(daemon).stopped:  # the same daemon started again: a fresh thread
        daemon.forget_state(STATE_KEY)
    memory_watch(daemon).start()


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    watch = memory_watch(daemon)
    if watch.running:
        watch.stop()  # kept, stopped: a late event samples nothing


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    watch = memory_watch(daemon)
    proc = daemon.process(event.pm_id)
    if proc is None:
        watch.forget(event.pm_id)  # deleted
    else:
        watch.track(proc)


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"memory_stats": memory_stats}


def memory_stats(daemon: Any) -> dict[str, dict[str, Any]]:
    """The last sample of every app with a limit, by pm_id (a string, as JSON has it)."""
    watch = memory_watch(daemon)
    if not watch.running:
        raise corral.PluginError("the memory plugin is not running in this daemon (see corral.log)")
    return watch.stats()
