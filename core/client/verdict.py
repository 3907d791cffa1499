"""A start's verdict: which new instances exited within ``min_uptime``, why, and the fix.

``start()`` returns as soon as the daemon has spawned the instances, as PM2's
does; an instance that dies at once (a port in use, a syntax error) then shows
only in a later ``ls``. :func:`wait_started` (``Client.wait_started``, and
``start(..., wait=True)``) watches the instances a start returned until each
has been up ``min_uptime`` (1 s by default), polling the daemon every 50 ms,
and says which exited in that time: the last telling line of its error log
and the fix (for ``EADDRINUSE``: cluster mode, ``listen`` or ``port``). An app
none of whose instances stayed up is *down*; ``corral start`` then exits 1.

An instance exited when its pid changed, its restart or unstable-restart
count grew, or it is ``errored``/``waiting restart``/``stopped`` with an exit
code. One that stopped with exit code 0 (``autorestart: false``) finished: it
is named, but is no failure. Instances not started (``autostart: false``) are
not watched; one the depends plugin holds until its dependencies are met is
named in a note.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from corral.client.info import ProcessInfo
from corral.errors import NotFoundError, StateError

POLL_S = 0.05
_DOWN_STATUSES = ("errored", "waiting restart")
_IN_USE = re.compile(r"EADDRINUSE|address already in use", re.IGNORECASE)
_PORT = re.compile(r":(\d{1,5})\b(?!.*:\d)")  # the last ":<port>" of the line
# a line that states an error ("OSError: ...", "Error: listen EADDRINUSE ..."), not a frame
_TELLING = re.compile(r"^\S.*(\w*(Error|Exception)\b|\bE[A-Z]{4,}\b|Traceback|[Ff]atal|panic)")
_TAIL_BYTES = 16384


class StartFailed(StateError):
    """No instance of an app stayed up ``min_uptime`` after its start; ``verdict``
    holds the details (``start(..., wait=True)``)."""

    def __init__(self, verdict: StartVerdict) -> None:
        super().__init__("; ".join(verdict.lines(failures_only=True)))
        self.verdict = verdict

    @classmethod
    def check(cls, verdict: StartVerdict) -> list[ProcessInfo]:
        """The instances as last seen; raises StartFailed unless ``verdict.ok``."""
        if not verdict.ok:
            raise cls(verdict)
        return verdict.processes


@dataclass(frozen=True)
class Exited:
    """One instance that exited within ``min_uptime`` of its start."""

    name: str
    pm_id: int
    status: str  # as last seen
    restarts: int  # restarts since the start
    error_line: str | None  # the telling line of its error log, if it can be read here
    fix: str
    finished: bool = False  # stopped with exit code 0 (or a stop_exit_codes one): done

    def text(self) -> str:
        if self.finished:
            return f"{self.name} (pm_id {self.pm_id}) finished at once (a clean exit)"
        times = "time" if self.restarts == 1 else "times"
        again = f"restarted {self.restarts} {times}, " if self.restarts else ""
        who = f"{self.name} (pm_id {self.pm_id})"
        head = f"{who} exited within min_uptime ({again}now {self.status})"
        line = f"\n  last error: {self.error_line}" if self.error_line else ""
        return f"{head}{line}\n  fix: {self.fix}"


@dataclass
class StartVerdict:
    """What :func:`wait_started` saw: ``ok`` unless an app has no instance up."""

    processes: list[ProcessInfo]  # the watched instances, as last seen
    exited: list[Exited] = field(default_factory=list)
    down: list[str] = field(default_factory=list)  # apps none of whose instances stayed up
    held: list[ProcessInfo] = field(default_factory=list)  # waiting for their dependencies

    @property
    def ok(self) -> bool:
        return not self.down

    def report(self) -> list[tuple[str, str]]:
        """``(level, text)``: one per exited instance (``error`` when its app is down,
        else ``warning``; ``note`` when it finished), then an ``error`` per app down."""
        levels = [
            "note" if e.finished else "error" if e.name in self.down else "warning"
            for e in self.exited
        ]
        texts = [(level, e.text()) for level, e in zip(levels, self.exited, strict=True)]
        texts += [("note", _held_text(info)) for info in self.held]
        return texts + [("error", f"no instance of {name} stayed up") for name in self.down]

    def lines(self, *, failures_only: bool = False) -> list[str]:
        """The texts of :meth:`report` (without the notes, with ``failures_only``)."""
        return [text for level, text in self.report() if level != "note" or not failures_only]


class Watch:
    """The verdict's state, fed with fresh infos by a sync or an async loop."""

    def __init__(self, infos: Iterable[ProcessInfo], timeout: float | None = None) -> None:
        now = time.time() * 1000
        self.base: dict[int, ProcessInfo] = {}
        self.last: dict[int, ProcessInfo] = {}
        self.failed: dict[int, bool] = {}  # pm_id -> finished (exit 0) rather than failed
        wait_ms = 0.0
        self.held: list[ProcessInfo] = []  # waiting for their dependencies (depends)
        for info in infos:
            if not info.pid and info.status == "stopped" and _waiting_for(info):
                self.held.append(info)
                continue
            if not info.pid and info.status == "stopped" and info.exit_code is None:
                continue  # not started (autostart: false)
            self.base[info.pm_id] = self.last[info.pm_id] = info
            uptime = _min_uptime(info)
            left = info.pm_uptime + uptime - now if info.pm_uptime else uptime
            wait_ms = max(wait_ms, min(max(left, 0.0), uptime))
            if info.status in _DOWN_STATUSES or info.unstable_restarts > 0 or _ended(info):
                self.failed[info.pm_id] = _finished(info)
        wait_s = wait_ms / 1000 if timeout is None else timeout
        self.deadline = time.monotonic() + wait_s

    @property
    def ids(self) -> list[int]:
        return list(self.base)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    @property
    def done(self) -> bool:
        return self.remaining() <= 0 or len(self.failed) == len(self.base)

    def see(self, infos: Iterable[ProcessInfo]) -> None:
        """Take in the instances as they are now."""
        for info in infos:
            base = self.base.get(info.pm_id)
            if base is None:
                continue
            self.last[info.pm_id] = info
            if info.pm_id not in self.failed and (
                info.status in _DOWN_STATUSES
                or _ended(info)
                or (base.pid and info.pid != base.pid)
                or info.restart_time > base.restart_time
                or info.unstable_restarts > base.unstable_restarts
            ):
                self.failed[info.pm_id] = _finished(info)

    def verdict(self) -> StartVerdict:
        exited = []
        for pm_id, finished in sorted(self.failed.items()):
            info, base = self.last[pm_id], self.base[pm_id]
            line, fix = explain(info)
            restarts = max(0, info.restart_time - base.restart_time)
            exited.append(
                Exited(info.name, pm_id, info.status, restarts, line, fix, finished=finished)
            )
        apps: dict[str, bool] = {}  # name -> an instance stayed up
        for pm_id, info in self.base.items():
            up = pm_id not in self.failed or self.failed[pm_id]
            apps[info.name] = apps.get(info.name, False) or up
        down = [name for name, up in apps.items() if not up]
        return StartVerdict(list(self.last.values()), exited, down, self.held)


def _waiting_for(info: ProcessInfo) -> list[str]:
    """What the depends plugin holds it back for, until met; empty when not held."""
    return (info.field("depends_status") or {}).get("waiting_for") or []


def _held_text(info: ProcessInfo) -> str:
    waiting = ", ".join(_waiting_for(info))
    return f"{info.name} (pm_id {info.pm_id}) waits for {waiting} (depends_on): it starts then"


def wait_started(
    client: Any, infos: Iterable[ProcessInfo], timeout: float | None = None
) -> StartVerdict:
    """Watch what a start returned until each instance has been up ``min_uptime``
    (or ``timeout`` seconds); see :class:`StartVerdict`. Returns early when every
    instance has exited."""
    watch = Watch(infos, timeout)
    while not watch.done:
        time.sleep(min(POLL_S, watch.remaining()))
        watch.see(_current(client, watch.ids))
    return watch.verdict()


async def wait_started_async(
    client: Any, infos: Iterable[ProcessInfo], timeout: float | None = None
) -> StartVerdict:
    """:func:`wait_started` for an :class:`corral.AsyncClient`."""
    watch = Watch(infos, timeout)
    while not watch.done:
        await asyncio.sleep(min(POLL_S, watch.remaining()))
        try:
            watch.see(await client.describe(watch.ids))
        except NotFoundError:  # one was deleted meanwhile
            watch.see(await client.list())
    return watch.verdict()


def _current(client: Any, ids: list[int]) -> list[ProcessInfo]:
    try:
        return client.describe(ids)
    except NotFoundError:  # one was deleted meanwhile
        return client.list()


def _min_uptime(info: ProcessInfo) -> float:
    try:
        return float(info.options.get("min_uptime") or 1000)
    except (TypeError, ValueError):
        return 1000.0


def _ended(info: ProcessInfo) -> bool:
    return info.status == "stopped" and info.exit_code is not None


def _finished(info: ProcessInfo) -> bool:
    """Stopped with exit code 0, or a code the app declares a stop (``stop_exit_codes``)."""
    if info.status != "stopped" or info.exit_code is None:
        return False
    declared = info.pm2_env.get("stop_exit_codes") or []
    if not isinstance(declared, list):
        declared = [declared]
    return info.exit_code == 0 or info.exit_code in declared


def explain(info: ProcessInfo) -> tuple[str | None, str]:
    """The telling line of the instance's error log (None if unreadable here) and the fix."""
    tail = _tail(info.err_log) if info.err_log else []
    line = next((t for t in reversed(tail) if _TELLING.search(t)), None)
    line = line or next((t for t in reversed(tail) if t.strip()), None)
    if any(_IN_USE.search(t) for t in tail[-20:]):
        port = _PORT.search(line or "")
        where = port.group(1) if port else "PORT"
        node = "node" in str(info.pm2_env.get("exec_interpreter") or "")
        cluster = ""
        if node and info.exec_mode != "cluster_mode":
            cluster = "exec_mode cluster (-x cluster: node instances share their listen()), "
        fix = (
            "the port is taken (by another instance of this app, or another program): "
            f"let corral bind it once for every instance with {cluster}"
            f"listen (--listen :{where}), or port in cluster mode "
            f"(-x cluster --port {where}); or free the port"
        )
    else:
        fix = (
            f"see `corral logs {info.name} --err`, correct the error, "
            f"then `corral restart {info.name}`"
        )
    return (line.strip()[:300] if line else None), fix


def _tail(path: str) -> list[str]:
    """The last lines of a log file: a regular file, never opened through a link."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return []
    try:
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        data = os.pread(fd, _TAIL_BYTES, max(0, size - _TAIL_BYTES))
    except OSError:
        return []
    finally:
        os.close(fd)
    return data.decode("utf-8", "replace").splitlines()[-40:]


__all__ = ["Exited", "StartFailed", "StartVerdict", "Watch", "wait_started"]
