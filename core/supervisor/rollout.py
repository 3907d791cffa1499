"""Rolling reload: a process's new child is ready before its old one stops.

The new child is ready at its readiness signal (the ready message with
``wait_ready``, sd_notify ``READY=1``, the node preload's "listening") and once
every plugin's gate is open (a readiness check), or when ``listen_timeout`` (or a
gate's longer bound) passes without. If it exits first, or (with ``wait_ready``
or a gate) is not ready in time, it is stopped and the
old child goes on serving: the process is rolled back and the reload raises,
naming the reason. ``on_listen_timeout: continue`` makes the second case go
on with the new child instead, as PM2 does.

The status follows PM2's: ``launching`` during the reload with ``wait_ready``
(until the new child is ready), ``online`` throughout without it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from corral.errors import OptionError, ScriptError, StateError
from corral.supervisor import cgroup, lifecycle
from corral.supervisor.kill import exit_words, terminate
from corral.supervisor.lifecycle import Event, ProcessState
from corral.supervisor.monitor import TreeSampler
from corral.supervisor.process import TIMED_OUT

if TYPE_CHECKING:
    from corral.supervisor.cgroup_home import Cgroups
    from corral.supervisor.process import Child, ManagedProcess


class Supervisor(Protocol):
    """What a reload needs of the daemon that supervises the process (the Daemon is one);
    named here so this module does not import the daemon that imports it. The spawn, the
    pid file and the exit are the slot's (``proc.slot``)."""

    sampler: TreeSampler
    log: Any  # a structlog logger
    cgroups: Cgroups | None

    def change_state(
        self,
        proc: ManagedProcess,
        event: Event,
        *,
        emit: str | None = None,
        manually: bool = False,
        reason: str = "",
    ) -> None: ...

    def emit(
        self, proc: ManagedProcess, name: str, *, manually: bool = False, reason: str = ""
    ) -> None: ...

    def mark_dirty(self) -> None: ...


async def reload_process(
    daemon: Supervisor, proc: ManagedProcess, *, graceful: bool = False, reason: str = ""
) -> None:
    """Replace the child of an online process with a new one, ready before the old goes.

    If the new child exits or is not ready in time (``wait_ready``), it is stopped,
    the old one keeps serving, and StateError says why. ``reason`` (a plugin's: a
    memory figure, a changed file) goes with the ``reload`` event.
    """
    old = proc.child
    assert old is not None and proc.state is ProcessState.ONLINE
    old.retired = True
    proc.history = lifecycle.on_manual_restart(proc.history, int(time.time() * 1000))
    try:
        new = proc.slot.spawn(is_restart=True, reload=True)
    except (ScriptError, OptionError, StateError) as exc:
        roll_back(daemon, proc, old, str(exc))
        raise StateError(f"reload of {proc.name} (pm_id {proc.pm_id}) failed: {exc}") from exc
    limit = new.ready_bound
    await asyncio.wait({new.ready}, timeout=limit + 1)
    how = new.ready.result() if new.ready.done() else TIMED_OUT
    failure = None
    if how is None:
        failure = f"the new instance exited ({exit_words(new.exited.result())}) before ready"
    elif how == TIMED_OUT and (proc.waits_for_ready or new.gates) and not goes_on_at_timeout(proc):
        failure = f"the new instance was not ready within {_bound_words(proc, new)}; " + (
            "on_listen_timeout: continue would have kept it, as PM2 does"
        )
    if failure is not None:
        await terminate(proc, new, ["sigint", "sigkill"], daemon.sampler, daemon.log)
        await _remove_cgroup(daemon, proc, new)
        roll_back(daemon, proc, old, failure)
        raise StateError(
            f"reload of {proc.name} (pm_id {proc.pm_id}) failed: {failure}; "
            f"the old instance (pid {old.pid}) is still serving"
        )
    new.on_trial = False
    if proc.state is ProcessState.LAUNCHING:
        daemon.change_state(proc, Event.READY, emit="online", reason=how)
    else:
        daemon.mark_dirty()  # it stayed online; the state file names the new child
        daemon.emit(proc, "online", reason=how)
    daemon.emit(proc, "reload", manually=not reason, reason=reason)
    if graceful:
        steps = ["message", "sigint", "sigkill"]
    else:
        first = "message" if proc.options.get("shutdown_with_message") else "sigint"
        steps = [first, "sigkill"]
    await terminate(proc, old, steps, daemon.sampler, daemon.log)
    await _remove_cgroup(daemon, proc, old)


async def _remove_cgroup(daemon: Supervisor, proc: ManagedProcess, child: Child) -> None:
    """The stopped child's cgroup: emptied and removed. Its exit found it still held the
    child's descendants, so nothing else would remove it before the slot's next stop."""
    if daemon.cgroups is None or child.cgroup is None:
        return
    if set(cgroup.pids(child.cgroup)) - {os.getpid()}:  # the daemon leaves it by itself
        await cgroup.sweep(child.cgroup)
    daemon.cgroups.prune(proc.unique_id, [child.cgroup])


def _bound_words(proc: ManagedProcess, child: Child) -> str:
    """``listen_timeout (3 s)``, or what a closed gate (a readiness check) waited for."""
    closed = [gate.name for gate in child.gates if not gate.passed]
    if not closed or child.ready_bound <= proc.listen_timeout:
        words = f"listen_timeout ({child.ready_bound:g} s)"
    else:
        words = f"{child.ready_bound:g} s"
    return words + (f" ({' and '.join(closed)} not passed)" if closed else "")


def goes_on_at_timeout(proc: ManagedProcess) -> bool:
    """``on_listen_timeout: continue``: a new child not ready in time replaces the old
    one all the same (PM2's reload); the default, ``rollback``, keeps the old one."""
    return proc.options.get("on_listen_timeout") == "continue"


def roll_back(daemon: Supervisor, proc: ManagedProcess, old: Child, reason: str) -> None:
    proc.child = old
    old.retired = False
    proc.slot.write_pid_file()
    if proc.state is ProcessState.LAUNCHING:
        daemon.change_state(proc, Event.ROLLBACK, emit="reload failed", reason=reason)
    else:  # online throughout (no wait_ready): the old child goes on as it was
        proc.last_reason = reason
        daemon.mark_dirty()
        daemon.emit(proc, "reload failed", reason=reason)
    daemon.log.error("reload failed", name=proc.name, pm_id=proc.pm_id, reason=reason)
    if old.exited.done():  # the old one died meanwhile: the policy decides, as for a crash
        proc.slot.apply_exit(old, old.exited.result())
