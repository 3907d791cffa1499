"""Signals to process trees: how corral stops a child and everything it started.

A child runs in its own process group, so one ``killpg`` reaches the
grandchildren that stayed in it; descendants that left the group (``setsid``)
are signalled by pid from a snapshot taken before the stop.

Two kinds of process outlive that tree, and a stop reaches them as
:class:`Leftovers`: the process groups of the app's earlier children, which
exited and left members behind, and *strays*, grandchildren that double-forked
out of the group and were reparented to init. Every child's environment
carries its slot's ``unique_id``, which its descendants inherit, so a scan of
``/proc/*/environ`` finds the strays (Linux only; a process that empties its
environment escapes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import select
import signal
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from corral.rpc.wire import pid_alive
from corral.supervisor import cgroup
from corral.supervisor.monitor import Started, TreeSampler, same_process

if TYPE_CHECKING:
    from corral.supervisor.process import Child, ManagedProcess


def exit_words(code: int) -> str:
    """How a child ended, in words: ``exit code 3`` or ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def signal_name(code: int) -> str | None:
    """The signal that killed a child (``SIGKILL``) from its wait code, None for an exit."""
    if code >= 0:
        return None
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def signal_tree(pid: int, tree: list[int], sig: int, *, group: bool) -> None:
    """Send ``sig`` once to ``pid`` (its whole group when ``group``) and to each pid of
    ``tree``: a process the group signal reached is not signalled again (a second
    SIGINT landing while Python exits after the first kills it with SIGINT)."""
    reached = False
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
            reached = True
    for target in (pid, *tree):
        if reached and _group_of(target) == pid:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, sig)


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


SIGKILL_GRACE = 2.0  # seconds a SIGKILLed process may take to be gone (it cannot refuse)


async def _until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` until it is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        await asyncio.sleep(0.02)
    return done()


async def reap_leftovers(
    pid: int, tree: list[int], timeout: float, rest: Leftovers | Enclosure | None = None
) -> None:
    """Give grandchildren (and ``rest``) the same grace as the main process, then SIGKILL."""
    rest = rest or Leftovers()

    def gone() -> bool:
        return not group_alive(pid) and not any(pid_alive(p) for p in tree) and not rest.alive()

    if await _until(gone, timeout):
        return
    signal_tree(pid, [p for p in tree if pid_alive(p)], signal.SIGKILL, group=True)
    rest.send(signal.SIGKILL)
    # SIGKILL is delivered, not yet done: the slot is "stopped" only once they are gone
    await _until(gone, SIGKILL_GRACE)


# -- leftovers: what a stop reaches besides the running child's tree -------------

_MARKER = re.compile(rb"(?:^|\0)unique_id=([^\0]*)")


def _marker_of(pid: int) -> str | None:
    """The ``unique_id`` in the environment ``pid`` started with, if readable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            found = _MARKER.search(f.read())
    except OSError:  # gone, another user's, or no /proc
        return None
    return found.group(1).decode(errors="replace") if found else None


def scan_strays(markers: Collection[str], skip_groups: Collection[int]) -> dict[str, list[int]]:
    """Live processes whose environment holds ``unique_id=<m>`` for an ``m`` of ``markers``.

    Returns ``{marker: [pid, ...]}``. This process and the members of
    ``skip_groups`` (the groups of running children, which ``killpg`` reaches)
    are left out. Empty where there is no ``/proc``.
    """
    found: dict[str, list[int]] = {}
    if not markers:
        return found
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    me = os.getpid()
    for name in names:
        pid = int(name) if name.isdigit() else me
        if pid == me:
            continue
        marker = _marker_of(pid)
        if marker is None or marker not in markers:
            continue
        try:
            if os.getpgid(pid) in skip_groups:
                continue
        except OSError:
            continue
        found.setdefault(marker, []).append(pid)
    return found


class Stray:
    """A process outside every group a stop signals, held by a pidfd where there are
    pidfds, so that a pid reused while it is being stopped is never signalled."""

    def __init__(self, pid: int, fd: int | None) -> None:
        self.pid = pid
        self.fd = fd

    @classmethod
    def pin(cls, pid: int, marker: str) -> Stray | None:
        """``pid`` if it still carries ``marker`` once held; None if it is gone."""
        try:
            fd = os.pidfd_open(pid)
        except AttributeError:
            return cls(pid, None)  # no pidfds here: by pid, as the descendants snapshot
        except OSError as exc:
            return None if exc.errno == errno.ESRCH else cls(pid, None)
        if _marker_of(pid) != marker:  # exited, and its pid reused, since the scan
            os.close(fd)
            return None
        return cls(pid, fd)

    def send(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.fd is None:
                os.kill(self.pid, sig)
            else:
                signal.pidfd_send_signal(self.fd, sig)

    def alive(self) -> bool:
        if self.fd is None:
            return pid_alive(self.pid)
        poller = select.poll()  # a pidfd is readable once its process has exited
        poller.register(self.fd, select.POLLIN)
        return not poller.poll(0)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Stoppable:
    """What a stop does with a set of processes: ``send`` a signal, ask if any is ``alive``."""

    def send(self, sig: int) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        raise NotImplementedError

    async def stop(self, sig: int, timeout: float) -> None:
        """``sig`` to everything, SIGKILL to what is still there ``timeout`` seconds later."""
        if not self.alive():
            return
        self.send(sig)
        if not await _until(lambda: not self.alive(), timeout):
            self.send(signal.SIGKILL)


@dataclass
class Leftovers(_Stoppable):
    """What an app left beside its running child: ``groups`` of its earlier children
    that still have members, and ``strays`` that left every group."""

    groups: set[int] = field(default_factory=set)
    strays: list[Stray] = field(default_factory=list)
    covers_tree: ClassVar[bool] = False  # the running child's tree is signalled apart

    def send(self, sig: int) -> None:
        reached = set()
        for pgid in self.groups:
            if group_alive(pgid):  # an empty group's number may be taken again
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
                    reached.add(pgid)
        for stray in self.strays:
            if _group_of(stray.pid) not in reached:  # once per process, as signal_tree
                stray.send(sig)

    def alive(self) -> bool:
        return any(group_alive(g) for g in self.groups) or any(s.alive() for s in self.strays)

    def pids(self) -> list[int]:
        return [s.pid for s in self.strays]

    def close(self) -> None:
        for stray in self.strays:
            stray.close()


class Enclosure(_Stoppable):
    """Every process in some cgroups (a slot's children's, or one child's): the running
    child's whole tree and whatever its earlier children left."""

    covers_tree: ClassVar[bool] = True
    groups: ClassVar[frozenset[int]] = frozenset()  # nothing but the cgroups, for the logs

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def send(self, sig: int) -> None:
        for path in self.paths:  # each process once; SIGKILL is cgroup.kill
            cgroup.signal_all(path, sig)

    def alive(self) -> bool:
        return any(cgroup.populated(path) for path in self.paths)

    def pids(self) -> list[int]:
        return [pid for path in self.paths for pid in cgroup.pids(path)]

    def close(self) -> None:
        pass


def stop_signal(proc: ManagedProcess) -> signal.Signals:
    """The app's ``kill_signal`` (SIGINT by default)."""
    return signal.Signals[proc.options.get("kill_signal") or "SIGINT"]


def kill_timeout(proc: ManagedProcess) -> float:
    """The app's ``kill_timeout`` in seconds (PM2's default, 1.6 s)."""
    return int(proc.options.get("kill_timeout") or 1600) / 1000


def is_corral(pid: int) -> bool:
    """Whether ``pid`` runs corral (the daemon a state file names may have been replaced)."""
    import psutil  # deferred: psutil (~10 ms), only for a pid an old state file names

    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return "corral" in cmdline


async def kill_orphan(pid: int | None, started: Started, kill_timeout: Any) -> None:
    """Stop a child left by a dead daemon, if that pid is still the same process."""
    if not pid or not same_process(pid, started):
        return
    timeout = int(kill_timeout or 1600) / 1000
    signal_tree(pid, [], signal.SIGINT, group=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pid):
            return
        await asyncio.sleep(0.02)
    signal_tree(pid, [], signal.SIGKILL, group=True)


async def terminate(
    proc: ManagedProcess,
    child: Child,
    steps: list[str],
    sampler: TreeSampler,
    log: Any,
    rest: Leftovers | Enclosure | None = None,
) -> bool:
    """Stop ``child``: take ``steps`` one ``kill_timeout`` apart until it exits.

    A step is ``"message"`` (the "shutdown" message on its channel), ``"sigint"``
    (the app's ``kill_signal``, SIGINT by default) or ``"sigkill"``; each signal
    goes to ``rest`` too. Its leftover descendants (and ``rest``) then get the
    same grace. False if it outlived every step. A child in a cgroup of its own
    is stopped through it: ``rest`` if that covers it, else the child's cgroup.
    """
    treekill = bool(proc.options.get("treekill", True))
    if treekill and rest is None and child.cgroup is not None:
        rest = Enclosure([child.cgroup])
    rest = rest if treekill and rest is not None else Leftovers()
    tree = sampler.descendants(child.pid) if treekill and not rest.covers_tree else []
    timeout = kill_timeout(proc)
    for i, step in enumerate(steps):
        if child.exited.done():
            break
        if step == "message" and child.channel is not None:
            child.channel.send("shutdown")
        elif step == "sigint":
            if not rest.covers_tree:
                signal_tree(child.pid, tree, stop_signal(proc), group=treekill)
            rest.send(stop_signal(proc))
        elif step == "sigkill":
            if i > 0:
                log.warning("kill timeout, sending SIGKILL", name=proc.name, pid=child.pid)
            if not rest.covers_tree:
                signal_tree(child.pid, tree, signal.SIGKILL, group=treekill)
            rest.send(signal.SIGKILL)
        done, _ = await asyncio.wait({child.exited}, timeout=timeout)
        if done:
            break
    else:
        return False
    if treekill:
        await reap_leftovers(child.pid, tree, timeout, rest)
    return True
