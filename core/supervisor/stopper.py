"""A slot's stop: PM2's stop signal then SIGKILL after ``kill_timeout``, reaching
what the slot's exited children left (their groups, their strays, its cgroup). A
base of :class:`corral.supervisor.slot.Slot`."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from corral.supervisor import cgroup, lifecycle, prepared
from corral.supervisor.kill import (
    Enclosure,
    Leftovers,
    Stray,
    group_alive,
    kill_timeout,
    stop_signal,
    terminate,
)
from corral.supervisor.lifecycle import Event, ProcessState

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.prepared import PreparedSpec
    from corral.supervisor.process import Child, ManagedProcess


class Stopper:
    """One slot's stop, and what its exited children left (:class:`corral.supervisor.slot.Slot`)."""

    kernel: Daemon
    proc: ManagedProcess
    next_spec: PreparedSpec | None  # Reaper's: the next spawn's spec, dropped at a stop
    restarting: bool

    async def stop_process(self, *, manually: bool = False) -> None:
        """PM2's stop: SIGINT (or the 'shutdown' message), SIGKILL after ``kill_timeout``."""
        proc = self.proc
        proc.ran_before_stop = proc.state in lifecycle.RUNNING_STATES  # for respawn
        proc.held_by = ""  # a stop ends a plugin's hold on its launch
        self.next_spec, self.restarting = None, False  # a start after this makes its own
        if self.kernel.shutting_down:
            prepared.close_spares(self.kernel)
        emit = "stop" if manually else None
        if proc.state is ProcessState.WAITING_RESTART:
            if proc.restart_timer is not None:
                proc.restart_timer.cancel()
                proc.restart_timer = None
            self.kernel.change_state(proc, Event.STOP, emit=emit, manually=manually)
            await self._stop_leftovers()
            await self._sweep_cgroup()
            return
        if proc.state is ProcessState.STOPPING:
            if proc.exited is not None:
                await asyncio.shield(proc.exited)
            return
        child = proc.child
        if proc.state not in lifecycle.RUNNING_STATES or child is None:
            await self._stop_leftovers()  # what its exited children left running
            await self._sweep_cgroup()
            return
        self.kernel.change_state(proc, Event.STOP, emit=emit, manually=manually)
        first = "message" if proc.options.get("shutdown_with_message") else "sigint"
        proc.stop_in_progress = True
        try:
            rest = await self._leftovers()
            try:
                stopped = await terminate(
                    proc, child, [first, "sigkill"], self.kernel.sampler, self.kernel.log, rest
                )
            finally:
                rest.close()
            await self._sweep_cgroup()
        finally:
            proc.stop_in_progress = False
            held, proc.held_exit = proc.held_exit, None
            if held is not None:
                self.apply_exit(*held)
        if not stopped and not child.exited.done():  # it may have gone during the sweep
            reason = f"pid {child.pid} survived SIGKILL"
            self.kernel.change_state(proc, Event.KILL_FAILED, emit="errored", reason=reason)

    async def fail(self, *, reason: str) -> bool:
        """End the running child as if it had crashed: its ``kill_signal`` (or the
        shutdown message), SIGKILL after ``kill_timeout``. Its exit then goes to the
        restart policy (autorestart, restart_delay, the backoff, max_restarts), and
        the ``exit`` event starts with ``reason``. False if there was no child to end."""
        proc = self.proc
        child = proc.child
        running = proc.state in (ProcessState.ONLINE, ProcessState.LAUNCHING)
        if child is None or child.exited.done() or not running or proc.stop_in_progress:
            return False
        child.fail_reason = reason
        self.kernel.log.warning("ending as failed", name=proc.name, pm_id=proc.pm_id, reason=reason)
        first = "message" if proc.options.get("shutdown_with_message") else "sigint"
        await terminate(proc, child, [first, "sigkill"], self.kernel.sampler, self.kernel.log)
        return True

    # -- leftovers: what a stop reaches besides the running child's tree -------

    def _keep_group(self, child: Child) -> None:
        """Remember the exited child's process group while members outlive it."""
        proc = self.proc
        if proc.options.get("treekill", True) and group_alive(child.pid):
            proc.leftover_groups = {g for g in proc.leftover_groups if group_alive(g)}
            proc.leftover_groups.add(child.pid)  # no live group's id is given to a new process

    async def _leftovers(self) -> Leftovers:
        """The groups ``proc``'s exited children left, and its strays, held for a stop.

        The caller closes it. Nothing with ``treekill`` off: then only the main pid
        is ever signalled.
        """
        proc = self.proc
        if not proc.options.get("treekill", True):
            return Leftovers()
        if self.kernel.cgroups is not None and (
            proc.child is None or proc.child.cgroup is not None
        ):
            return Enclosure(
                self.kernel.cgroups.of_slot(proc.unique_id)
            )  # everything, nothing else
        proc.leftover_groups = {g for g in proc.leftover_groups if group_alive(g)}
        pids = await self.kernel.strays.find(proc.unique_id)
        strays = [Stray.pin(pid, proc.unique_id) for pid in pids]
        return Leftovers(set(proc.leftover_groups), [s for s in strays if s is not None])

    async def _stop_leftovers(self) -> None:
        """Stop what a slot with no child left: ``kill_signal``, SIGKILL after kill_timeout."""
        proc = self.proc
        rest = await self._leftovers()
        try:
            if rest.alive():
                self.kernel.log.info(
                    "stopping leftovers",
                    name=proc.name,
                    pm_id=proc.pm_id,
                    groups=sorted(rest.groups),
                    pids=rest.pids(),
                )
                await rest.stop(stop_signal(proc), kill_timeout(proc))
        finally:
            rest.close()
        proc.leftover_groups = {g for g in proc.leftover_groups if group_alive(g)}

    async def _sweep_cgroup(self) -> None:
        """The end of every stop: SIGKILL whatever is still in the slot's cgroup (a process
        forked after the last signal), wait until it is empty, and remove it."""
        proc = self.proc
        if self.kernel.cgroups is None:
            return
        for path in self.kernel.cgroups.of_slot(proc.unique_id):
            if set(cgroup.pids(path)) <= {os.getpid()}:
                # nothing of the app's left: at most this daemon, which the mover takes out
                # of its last child's cgroup within ~10 ms. A wait here would show a restart
                # "stopped" to other clients; prune removes the cgroup once it is empty.
                continue
            if not await cgroup.sweep(path):
                self.kernel.log.error(
                    "processes outlive cgroup.kill", name=proc.name, pids=cgroup.pids(path)
                )
        self.kernel.cgroups.prune(proc.unique_id)
