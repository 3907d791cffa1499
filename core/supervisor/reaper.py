"""A slot's exits: told by the spawner that forked the child, else noticed at once
through a pidfd (a waiter thread where pidfds do not exist); answered by the restart
policy of :mod:`corral.supervisor.lifecycle`, and the restart it schedules. A base of
:class:`corral.supervisor.slot.Slot`, as supervisor's ``Subprocess.finish``."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, Any

from corral.errors import OptionError, ScriptError, StateError
from corral.supervisor import cgroup, lifecycle
from corral.supervisor.kill import exit_words, signal_name
from corral.supervisor.lifecycle import Event, ProcessState
from corral.supervisor.process import now_ms
from corral.supervisor.spawner import SpawnedChild

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.prepared import PreparedSpec
    from corral.supervisor.process import Child, ManagedProcess


class Reaper:
    """Exit watching and the restart policy, for one slot (:class:`corral.supervisor.slot.Slot`)."""

    kernel: Daemon
    proc: ManagedProcess
    next_spec: PreparedSpec | None = None  # the next spawn's spec (corral.supervisor.prepared)
    restarting: bool = False  # restarted by its policy since its start: its spec is kept
    _held_log: dict[str, Any] | None = None  # the exit's log line, written after the fork

    def watch_exit(self, child: Child) -> None:
        assert self.kernel.loop is not None
        if isinstance(child.popen, SpawnedChild):  # the spawner tells its exit: no pidfd
            child.popen.link.watch(child.pid, lambda code: self._spawned_exit(child, code))
            return
        try:
            pidfd = self.kernel.system.pidfd_open(child.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_thread, args=(child,), daemon=True).start()
            return
        child.pidfd = pidfd
        self.kernel.loop.add_reader(pidfd, self._on_pidfd, child)

    def _on_pidfd(self, child: Child) -> None:
        assert self.kernel.loop is not None and child.pidfd is not None
        self.kernel.loop.remove_reader(child.pidfd)
        os.close(child.pidfd)
        child.pidfd = None
        self._handle_exit(child, self.kernel.system.wait(child.popen))

    def _spawned_exit(self, child: Child, code: int) -> None:
        child.popen.returncode = code
        self._handle_exit(child, code)

    def _wait_thread(self, child: Child) -> None:
        code = self.kernel.system.wait(child.popen)
        assert self.kernel.loop is not None
        self.kernel.loop.call_soon_threadsafe(self._handle_exit, child, code)

    def _handle_exit(self, child: Child, code: int) -> None:
        proc = self.proc
        self._keep_group(child)  # first: a later stop must reach what it left behind
        if (
            child.cgroup is not None
            and self.kernel.cgroups is not None
            and self.kernel.loop is not None
        ):
            # gone, unless it left some; later, so an immediate restart forks first
            self.kernel.loop.call_soon(self.kernel.cgroups.prune, proc.unique_id, [child.cgroup])
        self.kernel.children.pop(child.pid, None)
        self.kernel.output.drain(child, proc)
        if child.channel is not None:
            child.channel.close()
        if child.stdin is not None:
            child.stdin.close()
        child.exited.set_result(code)
        if not child.ready.done():
            child.ready.set_result(None)  # exited before it was ready
        if child.retired or child.on_trial or proc.child is not child:
            self.kernel.log.info(
                "exited", name=proc.name, pm_id=proc.pm_id, code=code, how=exit_words(code)
            )
            return  # a reload's old or new child: the reload decides
        if proc.stop_in_progress and proc.state is ProcessState.STOPPING:
            proc.held_exit = (child, code)  # stop_process applies it once the tree is gone
            return
        self.apply_exit(child, code)

    def apply_exit(self, child: Child, code: int) -> None:
        """The restart policy's answer to the exit of the slot's child."""
        proc = self.proc
        proc.child = None
        proc.exit_code = code
        policy = proc.restart_policy()
        now = now_ms()
        sig = signal_name(code)  # the last exit, kept across restarts (describe)
        proc.last_exit = {"code": None if sig else code, "signal": sig, "at": now}
        if child.fail_reason:
            proc.last_exit["reason"] = child.fail_reason
        history = proc.history
        if proc.state is ProcessState.ONLINE:
            # PM2's worker resets the backoff of an app online for 30 s; at exit is the same
            history = lifecycle.reset_backoff_if_stable(history, now)
        decision = lifecycle.decide_exit(
            proc.state, policy, history, code if code >= 0 else None, now
        )
        proc.history = decision.history
        why = exit_words(code)
        if child.fail_reason:  # a plugin ended it (a liveness check): said before how
            why = f"{child.fail_reason}: {why}"
        line = {"name": proc.name, "pm_id": proc.pm_id, "code": code, "how": why}
        line["next"] = decision.state.value
        if decision.event is Event.CRASHED and decision.delay_ms <= 0:
            self._held_log = line  # written once the restart has forked (after_fork)
        else:
            self.kernel.log.info("exited", **line)
        reason = f"{why}; {decision.reason}"
        if decision.event is Event.OVERLIMIT:
            self.kernel.emit(proc, "restart overlimit", reason=reason)  # then "exit", as PM2
        # an immediate restart forks first; the plugins hear "exit" (then "online") after,
        # each event with the state it had when it happened
        with self.kernel.fanout.holding():
            self.kernel.change_state(proc, decision.event, emit="exit", reason=reason)
            if decision.event is Event.CRASHED and not self.kernel.shutting_down:
                self._schedule_restart(decision.delay_ms)
        self.after_fork()  # no restart forked (shutting down, or it failed)
        if proc.child is None:
            self._remove_pid_file()  # an immediate restart has rewritten it already

    def after_fork(self) -> None:
        """Right after a spawn's fork: the exit log line held until the restart forked."""
        line, self._held_log = self._held_log, None
        if line is not None:
            with contextlib.suppress(Exception):  # a spawn never fails for a log line
                self.kernel.log.info("exited", **line)

    # -- restarts by policy --------------------------------------------------

    def _schedule_restart(self, delay_ms: int) -> None:
        proc = self.proc
        assert self.kernel.loop is not None
        if delay_ms <= 0:
            self._respawn()
        else:
            proc.restart_timer = self.kernel.loop.call_later(delay_ms / 1000, self._respawn)

    def _respawn(self) -> None:
        proc = self.proc
        proc.restart_timer = None
        if (
            proc.state is not ProcessState.WAITING_RESTART
            or self.kernel.procs.get(proc.pm_id) is not proc
        ):
            return
        self._end_exited_runs()
        self.restarting = True  # its next spawns reuse the spec (corral.supervisor.prepared)
        with contextlib.suppress(ScriptError, OptionError, StateError):
            child = self.spawn(is_restart=True)
            if proc.history.prev_restart_delay:
                # as PM2's worker: a run that stays up forgets the backoff, shown at once
                wait = lifecycle.EXP_BACKOFF_RESET_MS / 1000 + 0.01
                assert self.kernel.loop is not None
                self.kernel.loop.call_later(wait, self._forget_backoff, child)

    def _forget_backoff(self, child: Child) -> None:
        proc = self.proc
        if proc.child is child and proc.state in lifecycle.RUNNING_STATES:
            proc.history = lifecycle.reset_backoff_if_stable(proc.history, now_ms())
            self.kernel.mark_dirty()

    def _end_exited_runs(self) -> None:
        """Before a policy restart, SIGKILL what the exited runs left in their cgroups, as
        systemd does before it restarts a unit (PM2 and supervisor leave them, and a crash
        loop then piles them up). Without cgroups they wait for the next stop, as before."""
        proc = self.proc
        if self.kernel.cgroups is None:
            return
        paths = self.kernel.cgroups.of_slot(proc.unique_id)
        for path in paths:
            if cgroup.populated(path):
                cgroup.kill_all(path)  # never the daemon's own cgroup: kill_all checks
        if paths and self.kernel.loop is not None:  # forgotten after the fork
            self.kernel.loop.call_soon(self.kernel.cgroups.prune, proc.unique_id, paths)
