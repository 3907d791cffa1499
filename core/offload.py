"""Observer hooks of plugins that may block, run off the event loop, on bounded queues.

A plugin that does not declare ``corral_runs_on_loop = True`` gets its
``corral_process_event``, ``corral_process_message`` and ``corral_log_chunk``
calls on a thread of its own, in order, so a slow implementation (a webhook,
a sleep) never delays the daemon's replies. First-party plugins declare it:
they only queue work or touch loop state, and must not block.

Each plugin's backlog is bounded, so a stuck observer cannot grow the daemon's
memory without limit. ``corral_log_chunk`` and ``corral_process_message`` calls
wait at most ``MAX_PENDING`` at a time and ``MAX_PENDING_BYTES`` of log data
per plugin; a call beyond either is dropped (the newest goes, the backlog keeps
its order) and counted per plugin and hook. An app controls how fast these come,
so only a bound keeps the daemon safe; the log file already has every byte.
``corral_process_event`` calls are never dropped: the daemon makes them (a few
per spawn, and spawns are throttled by restart delays and ``max_restarts``), and
a plugin that acts on exits must see every one.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

OBSERVER_HOOKS = frozenset(
    {"corral_process_event", "corral_process_message", "corral_notify", "corral_log_chunk"}
)
NEVER_DROPPED = frozenset({"corral_process_event"})
MAX_PENDING = 1000  # droppable calls waiting per plugin: a message is small, a chunk <= 1 MiB
MAX_PENDING_BYTES = 8 * 1024 * 1024  # log data waiting per plugin: the daemon's worst case
_STOP = object()
log = logging.getLogger("corral.hooks")


def runs_on_loop(plugin: object) -> bool:
    """Whether a plugin promised its observer hooks are quick enough for the loop."""
    return bool(getattr(plugin, "corral_runs_on_loop", False))


def payload_size(hook: str, args: list[Any]) -> int:
    """The bytes a queued call holds that count against ``MAX_PENDING_BYTES``."""
    if hook != "corral_log_chunk":
        return 0
    return sum(len(arg) for arg in args if isinstance(arg, (bytes, bytearray)))


class _Lane:
    """One plugin's queue: its calls in order, what the droppable ones hold, its drop streak."""

    def __init__(self) -> None:
        self.jobs: collections.deque[Any] = collections.deque()
        self.ready = threading.Condition()
        self.pending = 0  # droppable calls queued
        self.pending_bytes = 0
        self.streak = 0  # calls dropped since the last one accepted


class PluginWorkers:
    """One thread and bounded queue per plugin, started on its first call."""

    def __init__(
        self,
        on_error: Callable[[str, str, BaseException], None],
        max_pending: int = MAX_PENDING,
        max_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self.on_error = on_error
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self._lanes: dict[str, _Lane] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def submit(self, plugin: str, hook: str, function: Callable[..., Any], args: list[Any]) -> bool:
        """Queue one call; False when it was dropped because the plugin is too far behind."""
        lane = self._lane(plugin)
        size = payload_size(hook, args)
        droppable = hook not in NEVER_DROPPED
        with lane.ready:
            if droppable:
                full = lane.pending >= self.max_pending
                if full or (lane.pending_bytes and lane.pending_bytes + size > self.max_bytes):
                    if not lane.streak:
                        log.warning(
                            "plugin %s is behind (%d calls, %d bytes queued): dropping "
                            "its %s calls until it catches up",
                            plugin,
                            lane.pending,
                            lane.pending_bytes,
                            hook,
                        )
                    lane.streak += 1
                    return False
                if lane.streak:
                    log.warning(
                        "plugin %s caught up after %d calls were dropped", plugin, lane.streak
                    )
                    lane.streak = 0
                lane.pending += 1
                lane.pending_bytes += size
            lane.jobs.append((hook, function, args, size if droppable else None))
            lane.ready.notify()
        return True

    def _lane(self, plugin: str) -> _Lane:
        with self._lock:
            lane = self._lanes.get(plugin)
            if lane is None:
                lane = self._lanes[plugin] = _Lane()
                thread = threading.Thread(
                    target=self._run,
                    args=(plugin, lane),
                    name=f"corral-plugin-{plugin}",
                    daemon=True,
                )
                self._threads[plugin] = thread
                thread.start()
            return lane

    def _run(self, plugin: str, lane: _Lane) -> None:
        while True:
            with lane.ready:
                while not lane.jobs:
                    lane.ready.wait()
                job = lane.jobs.popleft()
                if job is _STOP:
                    return
                hook, function, args, size = job
                if size is not None:
                    lane.pending -= 1
                    lane.pending_bytes -= size
            try:
                function(*args)
            except Exception as exc:
                self.on_error(plugin, hook, exc)

    def close(self, timeout: float = 5.0) -> None:
        """Let queued calls finish (up to ``timeout`` per plugin), then stop the threads."""
        with self._lock:
            lanes = list(self._lanes.values())
            threads = list(self._threads.values())
            self._lanes.clear()
            self._threads.clear()
        for lane in lanes:
            with lane.ready:
                lane.jobs.append(_STOP)
                lane.ready.notify()
        for thread in threads:
            thread.join(timeout)
