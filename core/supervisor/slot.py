"""One managed slot: the object that owns a pm_id's children.

As supervisor's ``Subprocess`` (circus's ``Watcher``): a :class:`Slot` spawns its
slot's child, tells when it is ready, carries its messages, and (with
:class:`corral.supervisor.reaper.Reaper` and :class:`corral.supervisor.stopper.Stopper`) reaps its
exits, restarts it by policy and stops it. :class:`corral.supervisor.process.ManagedProcess`
stays the record it acts on (options, state, history, child); the kernel
(:class:`corral.daemon.kernel.Daemon`) keeps what all slots share: the loop, the one
state-change chokepoint (``change_state``), the state file, the fds, the OS seam
(``daemon.system``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.errors import OptionError, ScriptError, StateError
from corral.supervisor import credentials, lifecycle, prepared
from corral.supervisor.channel import Channel
from corral.supervisor.cluster_share import on_listen as share_listen
from corral.supervisor.fdreserve import fd_limit, out_of_fds
from corral.supervisor.lifecycle import Event, ProcessState
from corral.supervisor.monitor import boot_ticks, start_time
from corral.supervisor.notify import parse as parse_notify
from corral.supervisor.process import TIMED_OUT, Child, now_ms
from corral.supervisor.readygate import all_open, ready_words
from corral.supervisor.reaper import Reaper
from corral.supervisor.rollout import reload_process
from corral.supervisor.spawn import (
    NODE_PRELOAD,
    SpawnSpec,
    build_argv,
    is_node,
    socket_activation_argv,
    split_args,
)
from corral.supervisor.stdin import StdinPipe
from corral.supervisor.stopper import Stopper

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.process import ManagedProcess


class Slot(Reaper, Stopper):
    """What happens to one pm_id's children: spawn, readiness, messages, restart (and,
    from its bases, exits and stops). One per ``ManagedProcess``, as ``proc.slot``."""

    def __init__(self, kernel: Daemon, proc: ManagedProcess) -> None:
        self.kernel = kernel  # the daemon: loop, change_state, fds, system, ...
        self.proc = proc  # the record this slot acts on
        proc.slot = self

    # -- spawning ----------------------------------------------------------

    def spawn(self, *, is_restart: bool, reload: bool = False) -> Child:
        """Start a child for ``proc`` now and make it the slot's child.

        ``reload``: the slot's current child keeps running (the caller holds it) and
        the new one is on trial until the caller accepts it. Raises ScriptError if
        exec fails (the slot is then errored, unless this is a reload), and StateError
        once the daemon is shutting down: from then on nothing is spawned.
        """
        return _finish(self._spawn_steps(is_restart, reload, alone=True))

    def spawn_soon(self, *, is_restart: bool) -> Callable[[], Child] | Child:
        """:meth:`spawn`, begun: the child if it is made already, else what finishes
        it (a spawn the spawner was asked for; ask for the next one before finishing
        this one, and the spawner forks while the daemon prepares the next)."""
        steps = self._spawn_steps(is_restart, False, alone=False)
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        return lambda: _finish(steps)

    def _spawn_steps(
        self, is_restart: bool, reload: bool, *, alone: bool
    ) -> Generator[None, None, Child]:
        proc = self.proc
        if self.kernel.shutting_down:
            raise StateError(
                f"the daemon is shutting down: {proc.name} (pm_id {proc.pm_id}) is not started"
            )
        if not reload:
            proc.held_by = ""
            self.kernel.change_state(proc, Event.SPAWN)
        elif proc.waits_for_ready:
            self.kernel.change_state(proc, Event.RELOAD)  # launching until the new child is ready
        else:
            self.kernel.mark_dirty()  # online throughout; the state file names the new child
        # counted first, so the child's environment shows this run's restart_time
        proc.history = lifecycle.on_spawn(proc.history, now_ms(), is_restart=is_restart)
        spec = prepared.spawn_spec(self)  # the last run's, while current
        channel: Channel | None = None
        try:
            channel = prepared.channel(self.kernel)  # a spare, made after the last spawn
            spec.env["CORRAL_CHANNEL_FD"] = str(channel.child_fd)
            if is_node(proc.interpreter):
                spec.env["NODE_CHANNEL_FD"] = str(channel.child_fd)
                spec.env["NODE_CHANNEL_SERIALIZATION_MODE"] = "json"
            spec.pass_fds.append(channel.child_fd)
            creds = credentials.resolve(proc.options)  # the user may be gone since the start
            credentials.account_env(spec.env, creds, proc.options)
            if self.kernel.notify is not None:
                spec.env["NOTIFY_SOCKET"] = self.kernel.notify.address_for(
                    creds.uid if creds else None
                )
            self._share_socket(spec)
            self.kernel.manager.call(
                "corral_before_spawn", daemon=self.kernel.api, app=proc, spawn=spec
            )
            if self.kernel.journal is not None:
                self.kernel.journal.intent(proc.unique_id)
            before = boot_ticks()
            system = self.kernel.system
            placed = system.places_in_cgroup(spec)  # the spawner puts it in its cgroup
            with self._birthplace(placed) as where:
                if placed:  # the spawner forks it: paused once it was asked (spawn_soon)
                    steps, forked = self.kernel.fds.call(_asked, system, spec, creds, where)
                    if steps is not None:
                        yield
                        forked = _finish(steps)
                    popen, out_r, err_r, in_w = forked
                else:
                    popen, out_r, err_r, in_w = self.kernel.fds.call(system.popen, spec, creds)
            after = boot_ticks()
            if self.kernel.journal is not None:
                started = (before, after) if before is not None else start_time(popen.pid)
                self.kernel.journal.record(popen.pid, started, proc.options.get("kill_timeout"))
            self.after_fork()  # what an exit held back until its restart forked
        except Exception as exc:  # whatever it is, the slot is errored, never left launching
            if channel is not None:
                channel.close()
            if isinstance(exc, OptionError):
                reason = str(exc)
            elif out_of_fds(exc):
                reason = (
                    f"cannot start {spec.argv[0]}: the daemon is out of file descriptors "
                    f"({exc.strerror}, limit {fd_limit()}); see corral.log"
                )
            else:
                reason = f"cannot execute {spec.argv[0]}: {exc}"
            self.kernel.log.error("spawn failed", name=proc.name, pm_id=proc.pm_id, error=str(exc))
            error = exc if isinstance(exc, OptionError) else ScriptError(reason)
            if not reload:
                self.kernel.change_state(proc, Event.SPAWN_FAILED, emit="errored", reason=reason)
            raise error from exc
        assert self.kernel.loop is not None
        child = Child(
            popen=popen,
            pid=popen.pid,
            started=(before, after) if before is not None else start_time(popen.pid),
            exited=self.kernel.loop.create_future(),
            ready=self.kernel.loop.create_future(),
            channel=channel,
            on_trial=reload,
            cgroup=where,
            stdin=StdinPipe(in_w),
            gates=tuple(spec.ready_gates),
            ready_bound=max([proc.listen_timeout, *(g.bound for g in spec.ready_gates)]),
        )
        for gate in child.gates:
            gate.bind(lambda: self.gate_opened(child))
        channel.on_message = lambda message: self.on_message(child, message)
        channel.start()
        if not reload:
            proc.exit_code = None
        proc.child = child
        self.kernel.children[child.pid] = (proc, child)
        self.kernel.output.watch(child, proc, out_r, "out")
        self.kernel.output.watch(child, proc, err_r, "err")
        if alone:  # one spawn (restart, reload, launch): its pipes reach the holder now
            self.kernel.output.hand_over()
        self.watch_exit(child)
        self.write_pid_file()
        self._tell_spawned(spec, child.pid)
        if not reload and not proc.waits_for_ready:
            # PM2's status: online once spawned; readiness is told apart (mark_ready)
            self.kernel.change_state(proc, Event.READY, emit="online", reason="spawned")
        if proc.expects_ready_signal or child.gates:
            self.kernel.loop.call_later(child.ready_bound, self.mark_ready, child, TIMED_OUT)
        if not proc.expects_ready_signal:
            self.mark_ready(child, "spawned")
        self.kernel.log.info(
            "spawned", name=proc.name, pm_id=proc.pm_id, pid=child.pid, restart=is_restart
        )
        return child

    @contextlib.contextmanager
    def _birthplace(self, placed: bool) -> Iterator[Path | None]:
        """Around the fork of ``proc``'s next child: the new cgroup it starts in, or None
        (no cgroups here, or ``treekill`` off: its descendants are meant to outlive it).
        ``placed``: the spawner forks it into that cgroup; else this process forks inside it."""
        proc = self.proc
        if self.kernel.cgroups is None or not proc.options.get("treekill", True):
            yield None
            return
        making = self.kernel.cgroups.fresh if placed else self.kernel.cgroups.born_in
        with making(proc.unique_id) as path:
            yield path

    def _spawn_spec(self) -> SpawnSpec:
        proc = self.proc
        options = proc.options
        node_args = split_args(options.get("node_args"))
        if is_node(proc.interpreter) and (proc.cluster or proc.shares_socket):
            preload = self.kernel.node_preload
            if self.kernel.credentials(proc) is not None and NODE_PRELOAD.exists():
                preload = NODE_PRELOAD  # another account may not reach into the 0700 home
            node_args = ["--require", str(preload), *node_args]
        argv = build_argv(
            proc.script,
            proc.interpreter,
            proc.is_command,
            node_args,
            split_args(options.get("args")),
        )
        return SpawnSpec(
            argv=argv, env=proc.child_env(), cwd=str(options.get("cwd") or self.kernel.home)
        )

    def _share_socket(self, spec: SpawnSpec) -> None:
        """Pass the app's listening socket as fd 3 (systemd socket activation)."""
        proc = self.proc
        address = proc.listen_address
        if address is None:
            return
        try:
            listener = self.kernel.listeners.acquire(
                proc.name, address, proc.pm_id, self.kernel.credentials(proc)
            )
        except OSError as exc:
            raise OptionError(
                f"cannot listen on {address}: {exc.strerror}: free it, or set listen/port "
                "to another address",
                field="listen",
            ) from exc
        proc.listen_port = listener.port
        spec.env.update(LISTEN_FDS="1", LISTEN_FDNAMES=proc.name)
        if listener.port is not None:
            spec.env["PORT"] = str(listener.port)
        spec.argv = socket_activation_argv(listener.fd, spec.argv)
        spec.pass_fds.append(listener.fd)

    def write_pid_file(self) -> None:
        proc = self.proc
        if proc.pid_path is None or proc.pid is None:
            return
        try:  # never over a file corral did not create, a device or through a link (pidfile.py)
            self.kernel.pid_files.write(proc.pid_path, proc.pid, self.kernel.credentials(proc))
        except (OSError, OptionError) as exc:
            self.kernel.log.error(
                "cannot write the pid file", path=str(proc.pid_path), error=str(exc)
            )

    def _remove_pid_file(self) -> None:
        proc = self.proc
        if proc.pid_path is not None:
            self.kernel.pid_files.remove(proc.pid_path)

    # -- readiness and messages ---------------------------------------------

    def _tell_spawned(self, spec: SpawnSpec, pid: int) -> None:
        """The plugins' ``spawn.when_spawned`` callbacks: one that raises is logged."""
        for callback in spec.spawned:
            try:
                callback(pid)
            except Exception as exc:
                self.kernel.log.error(
                    "a when_spawned callback failed",
                    name=self.proc.name,
                    callback=getattr(callback, "__qualname__", repr(callback)),
                    error=f"{type(exc).__name__}: {exc}",
                )

    def gate_opened(self, child: Child) -> None:
        """A plugin's gate opened: the child is ready if its own signal came already."""
        if child.signal_by is not None:
            self.mark_ready(child, child.signal_by)

    def mark_ready(self, child: Child, how: str) -> None:
        """``child`` is ready (``how`` says by which signal), or its wait's bound passed
        first; the first one wins. With plugins' gates (corral.supervisor.readygate), the
        signal is kept until every gate is open too. A ``wait_ready`` slot is ``online``
        from then on."""
        proc = self.proc
        if child.ready.done() or child.exited.done():
            return
        if child.gates and how != TIMED_OUT:
            if child.signal_by is None:
                child.signal_by = how
            if not all_open(child.gates):
                return
            how = ready_words(child.signal_by, child.gates)
        child.ready_by, child.ready_at = how, now_ms()
        child.ready.set_result(how)
        if child.on_trial or child.retired or proc.child is not child:
            return  # a reload decides what its new child's readiness means
        if proc.state is ProcessState.LAUNCHING:
            self.kernel.change_state(proc, Event.READY, emit="online", reason=how)

    def on_notify(self, child: Child, fields: dict[str, str]) -> None:
        """An sd_notify datagram from ``child``'s tree: ``READY=1`` makes it ready; every
        datagram goes to the plugins (``corral_notify``: the watchdog's ``WATCHDOG=1``)."""
        if fields.get("READY") == "1":
            self.mark_ready(child, "sd_notify READY=1")
        self.kernel.manager.call(
            "corral_notify", daemon=self.kernel.api, app=self.proc, pid=child.pid, fields=fields
        )

    def on_message(self, child: Child, message: Any) -> None:
        proc = self.proc
        if message == "ready":
            self.mark_ready(child, "ready message")
            return
        if isinstance(message, dict):
            if str(message.get("cmd", "")).startswith("NODE_"):
                return  # node's own IPC traffic
            if message.get("type") == "corral:notify" and isinstance(message.get("data"), str):
                # sd_notify's assignments over the channel (node has no unix datagrams)
                self.on_notify(child, parse_notify(message["data"].encode()))
                return
            if message.get("type") == "corral:listen" and proc.cluster:
                share_listen(self.kernel, proc, child, message.get("data"))
                return
            if message.get("type") == "corral:listening":
                if not proc.options.get("wait_ready"):
                    self.mark_ready(child, "listening")
                return
        self.kernel.manager.call(
            "corral_process_message", daemon=self.kernel.api, app=proc, message=message
        )

    def send_message(self, message: Any) -> None:
        proc = self.proc
        if proc.child is None or proc.child.channel is None:
            raise StateError(f"process {proc.pm_id} ({proc.name}) has no running child")
        proc.child.channel.send(message)

    # -- restarting --------------------------------------------------------

    def respawn(self, *, reason: str = "", manually: bool = True) -> None:
        """Start a slot again after ``stop_process``: PM2's counters reset, and, as PM2's
        restartProcessId, ``restart_time`` + 1 only if that stop ended a running child
        (a restart or start of a stopped, errored or waiting app is no restart)."""
        proc = self.proc
        proc.history = lifecycle.on_manual_restart(proc.history, now_ms())
        self.spawn(is_restart=proc.ran_before_stop)
        self.kernel.emit(proc, "restart", manually=manually, reason=reason)

    async def restart_process(self, *, reason: str) -> None:
        """Restart ``proc`` for a plugin (memory limit, file change, cron tick).

        Graceful: SIGINT, then SIGKILL after ``kill_timeout``; a stopped app is
        started. Cluster apps with a shared socket are reloaded instead, so they
        keep serving. ``reason`` goes with the ``restart`` event.
        """
        proc = self.proc
        async with self.kernel.lock(proc):
            if self.kernel.procs.get(proc.pm_id) is not proc or self.kernel.shutting_down:
                return
            self.kernel.log.info("restart", name=proc.name, pm_id=proc.pm_id, reason=reason)
            if proc.state is ProcessState.ONLINE and (proc.cluster or proc.shares_socket):
                with contextlib.suppress(StateError):
                    await reload_process(self.kernel, proc, reason=reason)
                    return
            await self.stop_process()
            if self.kernel.procs.get(proc.pm_id) is not proc:
                return  # deleted (or kill_daemon) while it stopped
            if proc.state in lifecycle.STOPPED_STATES:
                with contextlib.suppress(ScriptError, OptionError, StateError):
                    self.respawn(reason=reason, manually=False)


def _asked(system: Any, spec: SpawnSpec, creds: Any, where: Path | None) -> tuple[Any, Any]:
    """The spawner asked for ``spec``'s spawn: ``(steps to finish it, None)``, or
    ``(None, what popen gives)`` when it was made at once (the daemon forked it)."""
    steps = system.popen_steps(spec, creds, where)
    try:
        next(steps)
    except StopIteration as done:
        return None, done.value
    return steps, None


def _finish(steps: Generator[None, None, Any]) -> Any:
    """Run ``steps`` (a spawn) to its end: its child."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
