"""The health thread: its own asyncio loop runs every check, off the daemon's loop.

Each :class:`Probe` is one check of one child: a task that waits ``initial_delay``,
then probes every ``interval`` (start to start, a slow probe delays the next), each
probe bounded by ``timeout``, and hands every result to the daemon's loop
(``report``). The thread starts with the first probe and sleeps in its loop's
``select`` between probes: no app with a check, no wake.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from corral.plugins.health import probes
from corral.plugins.health.config import argv_of, kind_of

JOIN_TIMEOUT_S = 5.0

Report = Callable[["Probe", bool, str], None]


@dataclass(eq=False)
class Probe:
    """One check of one child, as the health thread runs it; immutable once started."""

    check: dict[str, Any]  # validated (config.validate), its ${VAR}s expanded
    pid: int
    env: dict[str, str]  # the child's, for an exec check
    cwd: str
    account: Any  # corral.api.Account or None
    task: asyncio.Task | None = field(default=None, repr=False)

    def attempt(self) -> Coroutine[Any, Any, str]:
        kind = kind_of(self.check)
        value = self.check[kind]
        if kind == "http":
            return probes.http(value)
        if kind == "tcp":
            return probes.tcp(value)
        return probes.run_command(argv_of(value), self.env, self.cwd, self.account)


class Runner:
    """The thread and its loop; :meth:`start` and :meth:`stop` are called from any thread."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self, probe: Probe) -> None:
        loop = self._running_loop()
        if loop is not None:
            loop.call_soon_threadsafe(self._begin, probe)

    def stop(self, probe: Probe) -> None:
        loop = self._loop
        if loop is not None and not self._closed:
            try:
                loop.call_soon_threadsafe(self._cancel, probe)
            except RuntimeError:
                pass  # its loop closed meanwhile: the task is gone with it

    def close(self) -> None:
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return
        thread.join(JOIN_TIMEOUT_S)

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        with self._lock:
            if self._closed:
                return None
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._run, args=(self._loop,), name="corral-health", daemon=True
                )
                self._thread.start()
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            pending = asyncio.all_tasks(loop)
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    # -- on the health thread --------------------------------------------------

    def _begin(self, probe: Probe) -> None:
        probe.task = asyncio.get_running_loop().create_task(self._probe_forever(probe))

    @staticmethod
    def _cancel(probe: Probe) -> None:
        if probe.task is not None:
            probe.task.cancel()

    async def _probe_forever(self, probe: Probe) -> None:
        check = probe.check
        await asyncio.sleep(check["initial_delay"] / 1000)
        timeout, interval = check["timeout"] / 1000, check["interval"] / 1000
        while True:
            began = time.monotonic()
            try:
                seen = await asyncio.wait_for(probe.attempt(), timeout)
                ok = True
            except asyncio.TimeoutError:
                ok, seen = False, f"no answer within the timeout ({check['timeout']} ms)"
            except probes.ProbeFailed as exc:
                ok, seen = False, str(exc)
            except Exception as exc:  # a probe's own bug: a failed check, said, never a dead thread
                ok, seen = False, f"{type(exc).__name__}: {exc}"
            self._report(probe, ok, seen)
            await asyncio.sleep(max(0.0, began + interval - time.monotonic()))
