"""Signals to process trees: how corral stops a child and everything it started.

A child runs in its own process group, so one ``killpg`` reaches the
grandchildren that stayed in it; descendants that left the group (``setsid``)
are signalled by pid from a snapshot taken before the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from .monitor import Started, TreeSampler, same_process
from .rpc import pid_alive

if TYPE_CHECKING:
    from .process import Child, ManagedProcess


def exit_words(code: int) -> str:
    """How a child ended, in words: ``exit code 3`` or ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def signal_tree(pid: int, tree: list[int], sig: int, *, group: bool) -> None:
    """Send ``sig`` to ``pid`` (its whole group when ``group``) and to each pid of ``tree``."""
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
    for child in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, sig)


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def reap_leftovers(pid: int, tree: list[int], timeout: float) -> None:
    """Give grandchildren the same grace as the main process, then SIGKILL them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_alive(pid) and not any(pid_alive(p) for p in tree):
            return
        await asyncio.sleep(0.02)
    signal_tree(pid, [p for p in tree if pid_alive(p)], signal.SIGKILL, group=True)


def is_corral(pid: int) -> bool:
    """Whether ``pid`` runs corral (the daemon a state file names may have been replaced)."""
    import psutil

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
    proc: ManagedProcess, child: Child, steps: list[str], sampler: TreeSampler, log: Any
) -> bool:
    """Stop ``child``: take ``steps`` one ``kill_timeout`` apart until it exits.

    A step is ``"message"`` (the "shutdown" message on its channel), ``"sigint"``
    (the app's ``kill_signal``, SIGINT by default) or ``"sigkill"``. Its leftover
    descendants then get the same grace. False if it outlived every step.
    """
    treekill = bool(proc.options.get("treekill", True))
    tree = sampler.descendants(child.pid) if treekill else []
    timeout = int(proc.options.get("kill_timeout") or 1600) / 1000
    for i, step in enumerate(steps):
        if child.exited.done():
            break
        if step == "message" and child.channel is not None:
            child.channel.send("shutdown")
        elif step == "sigint":
            stop_signal = signal.Signals[proc.options.get("kill_signal") or "SIGINT"]
            signal_tree(child.pid, tree, stop_signal, group=treekill)
        elif step == "sigkill":
            if i > 0:
                log.warning("kill timeout, sending SIGKILL", name=proc.name, pid=child.pid)
            signal_tree(child.pid, tree, signal.SIGKILL, group=treekill)
        done, _ = await asyncio.wait({child.exited}, timeout=timeout)
        if done:
            break
    else:
        return False
    if treekill:
        await reap_leftovers(child.pid, tree, timeout)
    return True
