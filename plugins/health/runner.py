"""The health thread: its own asyncio loop runs every check, off the daemon's loop.

Each :class:`Probe` is one check of one child: a task that waits ``initial_delay``,
then probes every ``interval`` (on that interval's grid of the monotonic clock, so
checks of one interval probe together), each probe bounded by ``timeout``, and
hands the results of each turn of its loop to the daemon's loop in one call
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
from corral.plugins.health.config import argv_of, kind_of, target

JOIN_TIMEOUT_S = 5.0

Report = Callable[[list[tuple["Probe", bool, str]]], None]  # (probe, passed, what it saw)


@dataclass(eq=False)
class Probe:
    """One check of one child, as the health thread runs it; immutable once started."""

    check: dict[str, Any]  # validated (config.validate), its ${VAR}s expanded
    pid: int
    env: dict[str, str]  # the child's, for an exec check
    cwd: str
    account: Any  # corral.api.Account or None
    task: asyncio.Task | None = field(default=None, repr=False)
    timed_out: bool = field(default=False, repr=False)  # its timeout cancelled the probe
    stopped: bool = field(default=False, repr=False)  # the runner stopped it
    _plan: tuple[Any, ...] | None = field(default=None, repr=False)

    def attempt(self) -> Coroutine[Any, Any, str]:
        """One probe of the check (its address and request worked out once)."""
        if self._plan is None:
            kind = kind_of(self.check)
            value = self.check[kind]
            if kind == "http":
                self._plan = (probes.http, *probes.http_request(value))
            elif kind == "tcp":
                self._plan = (probes.tcp, *target("tcp", value)[:2])
            else:
                self._plan = (probes.run_command, argv_of(value), self.env, self.cwd, self.account)
        probe, *args = self._plan
        return probe(*args)  # type: ignore[no-any-return]


def _time_out(task: asyncio.Task, probe: Probe) -> None:
    probe.timed_out = True
    task.cancel()


class Runner:
    """The thread and its loop; :meth:`start` and :meth:`stop` are called from any thread."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._results: list[tuple[Probe, bool, str]] = []  # on the health thread

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
        probe.stopped = True
        if probe.task is not None:
            probe.task.cancel()

    async def _probe_forever(self, probe: Probe) -> None:
        check = probe.check
        await asyncio.sleep(check["initial_delay"] / 1000)
        timeout, interval = check["timeout"] / 1000, check["interval"] / 1000
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        while True:
            # the probe runs in this task, cancelled at its timeout (wait_for would make a
            # task and a future more for each probe: most of what a probe costs here)
            late = loop.call_later(timeout, _time_out, task, probe)
            try:
                seen = await probe.attempt()
                ok = True
            except asyncio.CancelledError:
                if probe.stopped or not probe.timed_out:
                    raise
                probe.timed_out = False
                if hasattr(task, "uncancel"):  # 3.11+: this cancel is handled
                    task.uncancel()
                ok, seen = False, f"no answer within the timeout ({check['timeout']} ms)"
            except probes.ProbeFailed as exc:
                ok, seen = False, str(exc)
            except Exception as exc:  # a probe's own bug: a failed check, said, never a dead thread
                ok, seen = False, f"{type(exc).__name__}: {exc}"
            finally:
                late.cancel()
            if probe.stopped:  # stopped as it timed out: one cancel for both, stopped wins
                return
            self._hand_over(probe, ok, seen)
            # the next probe on the interval's grid of the monotonic clock: checks with
            # one interval fall into step, so their results go over in one wake
            now = time.monotonic()
            await asyncio.sleep((now // interval + 1) * interval - now)

    def _hand_over(self, probe: Probe, ok: bool, seen: str) -> None:
        """Queue the result; the results of one turn of this loop go over together."""
        self._results.append((probe, ok, seen))
        if len(self._results) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        results, self._results = self._results, []
        if results:
            self._report(results)
