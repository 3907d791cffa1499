"""Observer hooks of plugins that may block, run off the event loop.

A plugin that does not declare ``corral_runs_on_loop = True`` gets its
``corral_process_event``, ``corral_process_message`` and ``corral_log_chunk``
calls on a thread of its own, in order, so a slow implementation (a webhook,
a sleep) never delays the daemon's replies. First-party plugins declare it:
they only queue work or touch loop state, and must not block.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

OBSERVER_HOOKS = frozenset({"corral_process_event", "corral_process_message", "corral_log_chunk"})
_STOP = object()


def runs_on_loop(plugin: object) -> bool:
    """Whether a plugin promised its observer hooks are quick enough for the loop."""
    return bool(getattr(plugin, "corral_runs_on_loop", False))


class PluginWorkers:
    """One thread and queue per plugin, started on its first call."""

    def __init__(self, on_error: Callable[[str, str, BaseException], None]) -> None:
        self.on_error = on_error
        self._queues: dict[str, queue.Queue] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def submit(self, plugin: str, hook: str, function: Callable[..., Any], args: list[Any]) -> None:
        with self._lock:
            jobs = self._queues.get(plugin)
            if jobs is None:
                jobs = self._queues[plugin] = queue.Queue()
                thread = threading.Thread(
                    target=self._run,
                    args=(plugin, jobs),
                    name=f"corral-plugin-{plugin}",
                    daemon=True,
                )
                self._threads[plugin] = thread
                thread.start()
        jobs.put((hook, function, args))

    def _run(self, plugin: str, jobs: queue.Queue) -> None:
        while True:
            job = jobs.get()
            try:
                if job is _STOP:
                    return
                hook, function, args = job
                try:
                    function(*args)
                except Exception as exc:
                    self.on_error(plugin, hook, exc)
            finally:
                jobs.task_done()

    def close(self, timeout: float = 5.0) -> None:
        """Let queued calls finish (up to ``timeout`` per plugin), then stop the threads."""
        with self._lock:
            pending = list(self._queues.values())
            threads = list(self._threads.values())
            self._queues.clear()
            self._threads.clear()
        for jobs in pending:
            jobs.put(_STOP)
        for thread in threads:
            thread.join(timeout)
