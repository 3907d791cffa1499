"""The daemon: one asyncio loop that owns every child.

It spawns children in their own process groups, notices each exit at once
through a pidfd (a waiter thread where pidfds do not exist), reads their
pipes into the log files, applies the restart policy from
:mod:`corral.lifecycle`, and serves RPC. Every state change goes through
:meth:`Daemon.change_state`, which records it, emits ``corral_process_event``
and marks the state file for rewriting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zmq.asyncio

from . import __version__, cgroup, cgroup_home, credentials, homelock, lifecycle, paths
from .api import DaemonAPI
from .channel import Channel
from .cluster_share import on_listen as share_listen
from .daemonlog import DaemonLog, StructlogHandler
from .errors import CorralError, OptionError, ScriptError, StateError
from .events import ProcessEvent
from .fdholder import Drain, HolderLink
from .fdreserve import FdReserve, fd_limit, out_of_fds
from .handover import adopt, end_handed_over, read_handover
from .hooks import PluginManager, load_plugins
from .kill import (
    Enclosure,
    Leftovers,
    Stray,
    exit_words,
    group_alive,
    kill_orphan,
    kill_timeout,
    scan_strays,
    signal_name,
    stop_signal,
    terminate,
)
from .lifecycle import Event, ProcessState
from .listen import Listeners
from .logs import LogFiles, log_paths, own_log_paths, pid_path
from .monitor import TreeSampler, ancestors, boot_ticks, start_time
from .notify import Notifier
from .options import OptionSchema
from .output import OutputPipes
from .pidfile import PidFiles
from .process import TIMED_OUT, Child, ManagedProcess
from .reload import reload_process
from .rpc_async import RPCServer
from .secrets import KnownSecrets, mask_text
from .spawn import (
    NODE_PRELOAD,
    SpawnSpec,
    build_argv,
    is_node,
    own_preload,
    socket_activation_argv,
    split_args,
)
from .state import SpawnJournal, load_state, read_journal, save_state
from .stdin import StdinPipe
from .system import System
from .upgrade import install_info


def now_ms() -> int:
    return int(time.time() * 1000)


class Daemon:
    """The process manager. Plugins see it through ``self.api`` (``corral.api.DaemonAPI``)."""

    def __init__(
        self,
        home: Path | None = None,
        plugins: list[str | object] | None = None,
        *,
        in_process: bool = False,
    ) -> None:
        self.home = paths.ensure_home(home)
        self.in_process = in_process
        self.manager: PluginManager = load_plugins(plugins)
        self.schema = OptionSchema(self.manager.app_options())
        self.procs: dict[int, ManagedProcess] = {}
        self.locks: dict[int, asyncio.Lock] = {}
        self.logs = LogFiles()
        # the daemon's own directories, opened once: their files are opened relative to them
        self.logs.own_dir = (self.home / "logs", paths.open_dir(self.home, "logs"))
        self.pid_files = PidFiles((self.home / "pids", paths.open_dir(self.home, "pids")))
        self._creds: dict[int, tuple[dict, credentials.Credentials | None]] = {}
        self.sampler = TreeSampler()
        self.started_at = now_ms()
        # which corral this daemon runs, for ping (started_at tells an update's new image)
        self.install = {**install_info(), "started_at": self.started_at}
        self.successor: tuple[str, str | None] | None = None  # python, PYTHONPATH to exec
        self.node_preload = own_preload(self.home)  # outlives a reinstall (spawn.own_preload)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ctx: zmq.asyncio.Context | None = None
        self.server: RPCServer | None = None
        self.shutting_down = False
        self.leaving: str | None = None  # update: "exec" or "restart" (upgrade.py, handover.py)
        self._stopped = asyncio.Event()
        self.recovered = asyncio.Event()  # set once a dead daemon's apps are back
        self._state_scheduled = False
        self.api = DaemonAPI(self)  # what plugins see of this daemon
        self.output = OutputPipes(self.manager, self.api)
        self.children: dict[int, tuple[ManagedProcess, Child]] = {}  # by pid, for sd_notify
        self.listeners = Listeners()
        self.notify: Notifier | None = None
        self.journal: SpawnJournal | None = None
        self.cgroups: cgroup_home.Cgroups | None = None  # each child in a cgroup, where possible
        self._previous_cgroups: list[Path] = []  # where a dead daemon of this home kept them
        self._held_events: list[ProcessEvent] | None = None  # see apply_exit
        self._has_event_hooks = bool(self.manager.pm.hook.corral_process_event.get_hookimpls())
        self.event_listeners: list[Any] = []  # callables(ProcessEvent), for in-process users
        self.fds = FdReserve()  # a spawn and a state write still work at the fd limit
        self.system = System()  # fork/exec, pidfd, wait: what a test may replace
        self.log_file = DaemonLog(paths.log_file(self.home))
        self.log = self.log_file.logger
        self.log_file.known_secrets = KnownSecrets(lambda: [p.env for p in self.procs.values()])
        self.log_file.watch(self.logs)  # a failing app log file is reported once per streak
        self._log_handler = StructlogHandler(self.log)
        logging.getLogger("corral").addHandler(self._log_handler)
        logging.getLogger("corral").setLevel(logging.INFO)
        self.manager.on_error.append(self._plugin_failed)
        from .commands import Commands

        self.commands = Commands(self)

    # -- running -----------------------------------------------------------

    async def run(self, ready: threading.Event | None = None) -> None:
        """Serve until ``kill_daemon`` or a termination signal."""
        homelock.hold(self.home)  # one daemon per home: before any file or socket is touched
        self.loop = asyncio.get_running_loop()
        # TCP (only if corral.yaml asks) first: a bad rpc_address stops the start here
        tcp = None
        if paths.has_settings(self.home):
            from . import remote

            tcp = remote.open_server(self.home, self.commands.dispatch, self.log)
        self.ctx = zmq.asyncio.Context()
        address = paths.rpc_address(self.home)
        self.server = RPCServer(self.ctx, address, self.commands.dispatch, log=self.log)
        os.chmod(paths.rpc_path(self.home), 0o600)
        self.notify = Notifier(self.home / "notify.sock", self._on_notify)
        self.journal = SpawnJournal(paths.journal_file(self.home))
        homelock.write_pid_file(self.home)
        if not self.in_process:  # a detached daemon's pipes outlive it (corral.fdholder)
            # before the cgroups open: the holder must not be born in an app's cgroup
            self.output.holder = HolderLink.open(self.home, self.log)
        self._previous_cgroups = cgroup_home.previous(self.home)  # before open() records its own
        if cgroup.wanted(self.in_process):
            self.cgroups = cgroup_home.Cgroups.open(self.home)
        if not self.in_process:
            self._install_signals()
        self.log.info(
            "daemon started",
            pid=os.getpid(),
            version=__version__,
            home=str(self.home),
            cgroup=str(self.cgroups.parent) if self.cgroups else None,
        )
        serving = asyncio.ensure_future(self.server.serve())
        try:
            self.manager.daemon_started(self.api)  # first, so plugins see the recovery's events
            await self._recover_previous()
            self.recovered.set()
            if ready is not None:
                ready.set()
            await self._stopped.wait()
        finally:
            serving.cancel()
            await self._shutdown()
            if tcp is not None:
                await tcp.close()

    def _install_signals(self) -> None:
        assert self.loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.loop.add_signal_handler(sig, self._on_terminate, sig)
        self.loop.add_signal_handler(signal.SIGUSR2, self.reload_logs)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _on_terminate(self, sig: int) -> None:
        # PM2 dumps the list on SIGTERM/SIGINT/SIGQUIT before stopping everything
        self.log.info("terminating on signal", signal=signal.Signals(sig).name)
        with contextlib.suppress(Exception):
            self.commands.save_dump(force=False)
        self.request_stop()

    def request_stop(self) -> None:
        self.shutting_down = True
        self._stopped.set()

    async def _shutdown(self) -> None:
        self.shutting_down = True
        if self.leaving is None:  # an update leaves every app running for the next daemon
            await asyncio.gather(*(self.stop_process(p) for p in list(self.procs.values())))
            for proc in list(self.procs.values()):
                self.forget(proc)
        # a reload's old or new child, which no slot holds: it must not outlive the daemon
        await asyncio.gather(
            *(
                terminate(proc, child, ["sigint", "sigkill"], self.sampler, self.log)
                for proc, child in list(self.children.values())
                if self.leaving is None or proc.child is not child
            )
        )
        if self.cgroups is not None:
            self.cgroups.close()
        self._write_state()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self.leaving != "exec":  # else the next image of this process takes them
            self.listeners.close_all()
        if self.notify is not None:
            self.notify.close()
        self.manager.daemon_stopped(self.api)
        if self.output.holder is not None:
            self.output.holder.close()  # every pipe dropped: the holder exits
        if self.server is not None:
            await self.server.drain()
            self.server.close()
        if self.ctx is not None:
            self.ctx.term()
        with contextlib.suppress(FileNotFoundError):
            paths.pid_file(self.home).unlink()
        with contextlib.suppress(FileNotFoundError):
            paths.rpc_path(self.home).unlink()
        self.log.info("daemon stopped", pid=os.getpid())
        self.fds.close()
        logging.getLogger("corral").removeHandler(self._log_handler)
        self.log_file.close()
        for own in (self.logs.own_dir, self.pid_files.own_dir):
            if own is not None:
                os.close(own[1])
        if self.leaving != "exec":  # else held across the exec: no daemon starts meanwhile
            homelock.release(self.home)  # last: the next daemon finds no socket or pid file of ours

    # -- state changes -----------------------------------------------------

    def change_state(
        self,
        proc: ManagedProcess,
        event: Event,
        *,
        emit: str | None = None,
        manually: bool = False,
        reason: str = "",
    ) -> None:
        """The one place a process changes state; emits ``emit`` when given."""
        proc.state = lifecycle.next_state(proc.state, event)
        if proc.state in lifecycle.STOPPED_STATES:
            # no child and none coming: a stopped app does not leave clients queued on its port
            self.listeners.release(proc.name, proc.pm_id)
        if reason:
            proc.last_reason = reason
        if emit:
            self.emit(proc, emit, manually=manually, reason=reason)
        self.mark_dirty()

    def emit(
        self, proc: ManagedProcess, name: str, *, manually: bool = False, reason: str = ""
    ) -> None:
        if not (self._has_event_hooks or self.event_listeners):
            return
        event = ProcessEvent(name, proc.pm2_env(with_env=False), manually=manually, reason=reason)
        if self._held_events is not None:
            self._held_events.append(event)  # told in order once the held section ends
            return
        self._tell(event)

    def _tell(self, event: ProcessEvent) -> None:
        if self._has_event_hooks:
            self.manager.call("corral_process_event", daemon=self.api, event=event)
        for listener in list(self.event_listeners):
            with contextlib.suppress(Exception):
                listener(event)

    def _plugin_failed(self, plugin: str, hook_name: str, exc: BaseException) -> None:
        self.log.error(
            "plugin failed", plugin=plugin, hook=hook_name, error=f"{type(exc).__name__}: {exc}"
        )

    # -- the state file ----------------------------------------------------

    def mark_dirty(self) -> None:
        """Rewrite the state file soon, once, however many changes come first."""
        if self._state_scheduled or self.loop is None:
            return
        self._state_scheduled = True
        self.loop.call_soon(self._write_state)

    def _write_state(self) -> None:
        self._state_scheduled = False
        apps = [self._state_entry(p) for p in self.procs.values()]
        try:
            self.fds.call(save_state, paths.state_file(self.home), apps, os.getpid())
        except OSError as exc:
            self.log.error("cannot write the state file", error=str(exc))
            return
        if self.journal is not None:
            self.journal.clear()  # the state file names every child now

    def _state_entry(self, proc: ManagedProcess) -> dict[str, Any]:
        entry = self.commands.saved_entry(proc)
        entry.update(
            pm_id=proc.pm_id,
            pid=proc.pid,
            pid_started=proc.child.started if proc.child is not None else None,
            history=dataclasses.asdict(proc.history),
        )
        ident = self.pid_files.identity(proc.pid_path)
        if ident is not None:  # the next daemon may rewrite and remove it (pidfile.py)
            entry["pid_file_created"] = [str(proc.pid_path), *ident]
        return entry

    async def _recover_previous(self) -> None:
        """Replace the apps of a daemon that died without stopping them.

        This daemon holds the home's lock (homelock), so no other daemon runs here.
        """
        state = load_state(paths.state_file(self.home)) or {"apps": []}
        handover = None if self.in_process else read_handover(self.home)
        if handover is not None and await self._take_over(handover, state["apps"]):
            return
        spawned = read_journal(paths.journal_file(self.home))  # children the state missed
        old_pid = state.get("daemon_pid")
        held = self.output.holder.take() if self.output.holder is not None else []
        drain = Drain(held, self.logs)  # what the old children left in their pipes
        if state["apps"] or spawned:
            await self._kill_orphans(state, spawned)
        await self._end_previous_cgroups()  # what the pids above did not reach
        if held:
            drained = await drain.finish(timeout=2.0)
            self.log.info("drained the old children's pipes", pipes=len(held), bytes=drained)
        if not state["apps"]:
            if spawned:
                self.mark_dirty()  # empties the journal
            return
        self.log.info(
            "recovering apps of a daemon that died", count=len(state["apps"]), pid=old_pid
        )
        for entry in state["apps"]:
            with contextlib.suppress(TypeError, ValueError):
                path, *ident = entry.get("pid_file_created") or ()
                self.pid_files.adopt(Path(path), tuple(int(n) for n in ident))
        await self.commands.restore(state["apps"], keep_ids=True)

    async def _take_over(self, handover: dict[str, Any], entries: list[dict[str, Any]]) -> bool:
        """Adopt what the image of this process before the exec ran (corral update); on
        any failure its children are ended and the apps restarted as after a death."""
        self._previous_cgroups = []  # the children in them are ours again
        try:
            await adopt(self, handover, entries)
        except Exception as exc:
            self.log.error(
                "handover failed: restarting the apps", error=f"{type(exc).__name__}: {exc}"
            )
            for proc in list(self.procs.values()):
                self.forget(proc)
            end_handed_over(handover)
            self._previous_cgroups = cgroup_home.previous(self.home)
            return False
        self.log.info("took over the apps of the image before the update", count=len(self.procs))
        return True

    async def _kill_orphans(self, state: dict[str, Any], spawned: list[dict[str, Any]]) -> None:
        """Stop the children a dead daemon recorded (state file, spawn journal), by pid."""
        orphans = {
            entry["pid"]: (entry.get("pid_started"), entry.get("kill_timeout"))
            for entry in spawned
            if "pid" in entry
        }
        # children forked by a daemon killed before their pid was known: by their unique_id
        markers = {entry["unique_id"] for entry in spawned if "unique_id" in entry}
        for pids in scan_strays(markers, skip_groups=()).values():
            for pid in pids:
                orphans.setdefault(pid, (start_time(pid), None))
        for entry in state["apps"]:
            timeout = entry.get("options", {}).get("kill_timeout")
            orphans[entry.get("pid")] = (entry.get("pid_started"), timeout)
        await asyncio.gather(
            *(kill_orphan(pid, started, timeout) for pid, (started, timeout) in orphans.items())
        )

    async def _end_previous_cgroups(self) -> None:
        """SIGKILL what a dead daemon's children left in its cgroups and remove them: the
        descendants that left every process group, parent and environment."""
        for parent in self._previous_cgroups:
            mine = self.cgroups is not None and parent == self.cgroups.parent
            for path in self.cgroups.stale() if self.cgroups and mine else [parent]:
                left = cgroup.pids(path)
                if not await cgroup.sweep(path):
                    self.log.error("processes outlive cgroup.kill", cgroup=str(path), pids=left)
                cgroup.remove_tree(path)
                if left:
                    self.log.info("ended what a dead daemon left", cgroup=str(path), pids=left)
        if self._previous_cgroups and self.cgroups is None:
            cgroup_home.forget_record(self.home)
        self._previous_cgroups = []

    # -- process slots -----------------------------------------------------

    def new_process(self, **fields: Any) -> ManagedProcess:
        proc = ManagedProcess(**fields)
        proc.log_paths = log_paths(self.home, proc.name, proc.pm_id, proc.options)
        proc.pid_path = pid_path(self.home, proc.name, proc.pm_id, proc.options)
        creds = self.credentials(proc)
        own = own_log_paths(self.home, proc.name, proc.pm_id, proc.options)
        for key in ("out", "err", "combined"):
            path = proc.log_paths.get(key)
            if path is not None and all(f.path != path for f in proc.log_files):
                proc.log_files.append(self.logs.acquire(path, creds, own=path in own))
        self.procs[proc.pm_id] = proc
        self.locks[proc.pm_id] = asyncio.Lock()
        self._count_instances(proc.name)
        self.mark_dirty()
        self.manager.call("corral_process_added", daemon=self.api, app=proc)
        return proc

    def forget(self, proc: ManagedProcess) -> None:
        if self.cgroups is not None:
            self.cgroups.prune(proc.unique_id)  # stopped: empty
        for log in proc.log_files:
            self.logs.release(log)
        proc.log_files.clear()
        self.listeners.release(proc.name, proc.pm_id)
        self._creds.pop(proc.pm_id, None)
        self.procs.pop(proc.pm_id, None)
        self.locks.pop(proc.pm_id, None)
        self._count_instances(proc.name)
        self.mark_dirty()

    def _count_instances(self, name: str) -> None:
        same = [p for p in self.procs.values() if p.name == name]
        for proc in same:
            proc.instances_of_app = len(same)

    def lock(self, proc: ManagedProcess) -> asyncio.Lock:
        return self.locks.setdefault(proc.pm_id, asyncio.Lock())

    # -- spawning ----------------------------------------------------------

    def spawn(self, proc: ManagedProcess, *, is_restart: bool, reload: bool = False) -> Child:
        """Start a child for ``proc`` now and make it the slot's child.

        ``reload``: the slot's current child keeps running (the caller holds it) and
        the new one is on trial until the caller accepts it. Raises ScriptError if
        exec fails (the slot is then errored, unless this is a reload), and StateError
        once the daemon is shutting down: from then on nothing is spawned.
        """
        if self.shutting_down:
            raise StateError(
                f"the daemon is shutting down: {proc.name} (pm_id {proc.pm_id}) is not started"
            )
        if not reload:
            self.change_state(proc, Event.SPAWN)
        elif proc.waits_for_ready:
            self.change_state(proc, Event.RELOAD)  # launching until the new child is ready
        else:
            self.mark_dirty()  # online throughout; the state file names the new child
        # counted first, so the child's environment shows this run's restart_time
        proc.history = lifecycle.on_spawn(proc.history, now_ms(), is_restart=is_restart)
        spec = self._spawn_spec(proc)
        channel: Channel | None = None
        try:
            channel = self.fds.call(Channel, lambda message: None)
            spec.env["CORRAL_CHANNEL_FD"] = str(channel.child_fd)
            if is_node(proc.interpreter):
                spec.env["NODE_CHANNEL_FD"] = str(channel.child_fd)
                spec.env["NODE_CHANNEL_SERIALIZATION_MODE"] = "json"
            spec.pass_fds.append(channel.child_fd)
            creds = credentials.resolve(proc.options)  # the user may be gone since the start
            credentials.account_env(spec.env, creds, proc.options)
            if self.notify is not None:
                spec.env["NOTIFY_SOCKET"] = self.notify.address_for(creds.uid if creds else None)
            self._share_socket(proc, spec)
            self.manager.call("corral_before_spawn", daemon=self.api, app=proc, spawn=spec)
            if self.journal is not None:
                self.journal.intent(proc.unique_id)
            before = boot_ticks()
            with self._birthplace(proc) as where:
                popen, out_r, err_r, in_w = self.fds.call(self.system.popen, spec, creds)
            after = boot_ticks()
            if self.journal is not None:
                started = (before, after) if before is not None else start_time(popen.pid)
                self.journal.record(popen.pid, started, proc.options.get("kill_timeout"))
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
            self.log.error("spawn failed", name=proc.name, pm_id=proc.pm_id, error=str(exc))
            error = exc if isinstance(exc, OptionError) else ScriptError(reason)
            if not reload:
                self.change_state(proc, Event.SPAWN_FAILED, emit="errored", reason=reason)
            raise error from exc
        assert self.loop is not None
        child = Child(
            popen=popen,
            pid=popen.pid,
            started=(before, after) if before is not None else start_time(popen.pid),
            exited=self.loop.create_future(),
            ready=self.loop.create_future(),
            channel=channel,
            on_trial=reload,
            cgroup=where,
            stdin=StdinPipe(in_w),
        )
        channel.on_message = lambda message: self._on_message(proc, child, message)
        channel.start()
        if not reload:
            proc.exit_code = None
        proc.child = child
        self.children[child.pid] = (proc, child)
        self.output.watch(child, proc, out_r, "out")
        self.output.watch(child, proc, err_r, "err")
        self._watch_exit(proc, child)
        self.write_pid_file(proc)
        if not reload and not proc.waits_for_ready:
            # PM2's status: online once spawned; readiness is told apart (mark_ready)
            self.change_state(proc, Event.READY, emit="online", reason="spawned")
        if proc.expects_ready_signal:
            self.loop.call_later(proc.listen_timeout, self.mark_ready, proc, child, TIMED_OUT)
        else:
            self.mark_ready(proc, child, "spawned")
        self.log.info(
            "spawned", name=proc.name, pm_id=proc.pm_id, pid=child.pid, restart=is_restart
        )
        return child

    @contextlib.contextmanager
    def _birthplace(self, proc: ManagedProcess) -> Iterator[Path | None]:
        """Around the fork of ``proc``'s next child: the new cgroup it starts in, or None
        (no cgroups here, or ``treekill`` off: its descendants are meant to outlive it)."""
        if self.cgroups is None or not proc.options.get("treekill", True):
            yield None
            return
        with self.cgroups.born_in(proc.unique_id) as path:
            yield path

    def _spawn_spec(self, proc: ManagedProcess) -> SpawnSpec:
        options = proc.options
        node_args = split_args(options.get("node_args"))
        if is_node(proc.interpreter) and (proc.cluster or proc.shares_socket):
            preload = self.node_preload
            if self.credentials(proc) is not None and NODE_PRELOAD.exists():
                preload = NODE_PRELOAD  # another account may not reach into the 0700 home
            node_args = ["--require", str(preload), *node_args]
        argv = build_argv(
            proc.script,
            proc.interpreter,
            proc.is_command,
            node_args,
            split_args(options.get("args")),
        )
        return SpawnSpec(argv=argv, env=proc.child_env(), cwd=str(options.get("cwd") or self.home))

    def _share_socket(self, proc: ManagedProcess, spec: SpawnSpec) -> None:
        """Pass the app's listening socket as fd 3 (systemd socket activation)."""
        address = proc.listen_address
        if address is None:
            return
        try:
            listener = self.listeners.acquire(
                proc.name, address, proc.pm_id, self.credentials(proc)
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

    def credentials(self, proc: ManagedProcess) -> credentials.Credentials | None:
        """The account ``proc``'s files are opened as (None: the daemon's), resolved once
        per options (a restart may change ``uid``)."""
        cached = self._creds.get(proc.pm_id)
        if cached is None or cached[0] is not proc.options:
            cached = self._creds[proc.pm_id] = (proc.options, credentials.resolve(proc.options))
        return cached[1]

    def write_pid_file(self, proc: ManagedProcess) -> None:
        if proc.pid_path is None or proc.pid is None:
            return
        try:  # never over a file corral did not create, a device or through a link (pidfile.py)
            self.pid_files.write(proc.pid_path, proc.pid, self.credentials(proc))
        except (OSError, OptionError) as exc:
            self.log.error("cannot write the pid file", path=str(proc.pid_path), error=str(exc))

    def _remove_pid_file(self, proc: ManagedProcess) -> None:
        if proc.pid_path is not None:
            self.pid_files.remove(proc.pid_path)

    # -- readiness and messages ---------------------------------------------

    def mark_ready(self, proc: ManagedProcess, child: Child, how: str) -> None:
        """``child`` is ready (``how`` says by which signal), or ``listen_timeout`` passed
        first; the first one wins. A ``wait_ready`` slot is ``online`` from then on."""
        if child.ready.done() or child.exited.done():
            return
        child.ready_by, child.ready_at = how, now_ms()
        child.ready.set_result(how)
        if child.on_trial or child.retired or proc.child is not child:
            return  # a reload decides what its new child's readiness means
        if proc.state is ProcessState.LAUNCHING:
            self.change_state(proc, Event.READY, emit="online", reason=how)

    def _on_notify(self, pid: int) -> None:
        for candidate in [pid, *ancestors(pid)]:
            found = self.children.get(candidate)
            if found is not None:
                self.mark_ready(found[0], found[1], "sd_notify READY=1")
                return

    def _on_message(self, proc: ManagedProcess, child: Child, message: Any) -> None:
        if message == "ready":
            self.mark_ready(proc, child, "ready message")
            return
        if isinstance(message, dict):
            if str(message.get("cmd", "")).startswith("NODE_"):
                return  # node's own IPC traffic
            if message.get("type") == "corral:listen" and proc.cluster:
                share_listen(self, proc, child, message.get("data"))
                return
            if message.get("type") == "corral:listening":
                if not proc.options.get("wait_ready"):
                    self.mark_ready(proc, child, "listening")
                return
        self.manager.call("corral_process_message", daemon=self.api, app=proc, message=message)

    def send_message(self, proc: ManagedProcess, message: Any) -> None:
        if proc.child is None or proc.child.channel is None:
            raise StateError(f"process {proc.pm_id} ({proc.name}) has no running child")
        proc.child.channel.send(message)

    # -- exits -------------------------------------------------------------

    def _watch_exit(self, proc: ManagedProcess, child: Child) -> None:
        assert self.loop is not None
        try:
            pidfd = self.system.pidfd_open(child.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_thread, args=(proc, child), daemon=True).start()
            return
        child.pidfd = pidfd
        self.loop.add_reader(pidfd, self._on_pidfd, proc, child)

    def _on_pidfd(self, proc: ManagedProcess, child: Child) -> None:
        assert self.loop is not None and child.pidfd is not None
        self.loop.remove_reader(child.pidfd)
        os.close(child.pidfd)
        child.pidfd = None
        self._handle_exit(proc, child, self.system.wait(child.popen))

    def _wait_thread(self, proc: ManagedProcess, child: Child) -> None:
        code = self.system.wait(child.popen)
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._handle_exit, proc, child, code)

    def _handle_exit(self, proc: ManagedProcess, child: Child, code: int) -> None:
        self._keep_group(proc, child)  # first: a later stop must reach what it left behind
        if child.cgroup is not None and self.cgroups is not None and self.loop is not None:
            # gone, unless it left some; later, so an immediate restart forks first
            self.loop.call_soon(self.cgroups.prune, proc.unique_id, [child.cgroup])
        self.children.pop(child.pid, None)
        self.output.drain(child, proc)
        if child.channel is not None:
            child.channel.close()
        if child.stdin is not None:
            child.stdin.close()
        child.exited.set_result(code)
        if not child.ready.done():
            child.ready.set_result(None)  # exited before it was ready
        if child.retired or child.on_trial or proc.child is not child:
            self.log.info(
                "exited", name=proc.name, pm_id=proc.pm_id, code=code, how=exit_words(code)
            )
            return  # a reload's old or new child: the reload decides
        if proc.stop_in_progress and proc.state is ProcessState.STOPPING:
            proc.held_exit = (child, code)  # stop_process applies it once the tree is gone
            return
        self.apply_exit(proc, child, code)

    def apply_exit(self, proc: ManagedProcess, child: Child, code: int) -> None:
        """The restart policy's answer to the exit of the slot's child."""
        proc.child = None
        proc.exit_code = code
        policy = proc.restart_policy()
        now = now_ms()
        sig = signal_name(code)  # the last exit, kept across restarts (describe)
        proc.last_exit = {"code": None if sig else code, "signal": sig, "at": now}
        history = proc.history
        if proc.state is ProcessState.ONLINE:
            # PM2's worker resets the backoff of an app online for 30 s; at exit is the same
            history = lifecycle.reset_backoff_if_stable(history, now)
        decision = lifecycle.decide_exit(
            proc.state, policy, history, code if code >= 0 else None, now
        )
        proc.history = decision.history
        why = exit_words(code)
        self.log.info(
            "exited",
            name=proc.name,
            pm_id=proc.pm_id,
            code=code,
            how=why,
            next=decision.state.value,
        )
        reason = f"{why}; {decision.reason}"
        if decision.event is Event.OVERLIMIT:
            self.emit(proc, "restart overlimit", reason=reason)  # then "exit", as PM2
        # an immediate restart forks first; the plugins hear "exit" (then "online") after,
        # each event with the state it had when it happened
        outermost = self._held_events is None
        if outermost:
            self._held_events = []
        try:
            self.change_state(proc, decision.event, emit="exit", reason=reason)
            if decision.event is Event.CRASHED and not self.shutting_down:
                self._schedule_restart(proc, decision.delay_ms)
        finally:
            if outermost:
                held, self._held_events = self._held_events or [], None
                for event in held:
                    self._tell(event)
        if proc.child is None:
            self._remove_pid_file(proc)  # an immediate restart has rewritten it already

    def _schedule_restart(self, proc: ManagedProcess, delay_ms: int) -> None:
        assert self.loop is not None
        if delay_ms <= 0:
            self._respawn(proc)
        else:
            proc.restart_timer = self.loop.call_later(delay_ms / 1000, self._respawn, proc)

    def _respawn(self, proc: ManagedProcess) -> None:
        proc.restart_timer = None
        if proc.state is not ProcessState.WAITING_RESTART or self.procs.get(proc.pm_id) is not proc:
            return
        self._end_exited_runs(proc)
        with contextlib.suppress(ScriptError, OptionError, StateError):
            child = self.spawn(proc, is_restart=True)
            if proc.history.prev_restart_delay:
                # as PM2's worker: a run that stays up forgets the backoff, shown at once
                wait = lifecycle.EXP_BACKOFF_RESET_MS / 1000 + 0.01
                assert self.loop is not None
                self.loop.call_later(wait, self._forget_backoff, proc, child)

    def _forget_backoff(self, proc: ManagedProcess, child: Child) -> None:
        if proc.child is child and proc.state in lifecycle.RUNNING_STATES:
            proc.history = lifecycle.reset_backoff_if_stable(proc.history, now_ms())
            self.mark_dirty()

    def _end_exited_runs(self, proc: ManagedProcess) -> None:
        """Before a policy restart, SIGKILL what the exited runs left in their cgroups, as
        systemd does before it restarts a unit (PM2 and supervisor leave them, and a crash
        loop then piles them up). Without cgroups they wait for the next stop, as before."""
        if self.cgroups is None:
            return
        for path in self.cgroups.of_slot(proc.unique_id):
            if cgroup.populated(path):
                cgroup.kill_all(path)  # never the daemon's own cgroup: kill_all checks
        self.cgroups.prune(proc.unique_id)

    # -- stopping ----------------------------------------------------------

    async def stop_process(self, proc: ManagedProcess, *, manually: bool = False) -> None:
        """PM2's stop: SIGINT (or the 'shutdown' message), SIGKILL after ``kill_timeout``."""
        proc.ran_before_stop = proc.state in lifecycle.RUNNING_STATES  # for respawn
        emit = "stop" if manually else None
        if proc.state is ProcessState.WAITING_RESTART:
            if proc.restart_timer is not None:
                proc.restart_timer.cancel()
                proc.restart_timer = None
            self.change_state(proc, Event.STOP, emit=emit, manually=manually)
            await self._stop_leftovers(proc)
            await self._sweep_cgroup(proc)
            return
        if proc.state is ProcessState.STOPPING:
            if proc.exited is not None:
                await asyncio.shield(proc.exited)
            return
        child = proc.child
        if proc.state not in lifecycle.RUNNING_STATES or child is None:
            await self._stop_leftovers(proc)  # what its exited children left running
            await self._sweep_cgroup(proc)
            return
        self.change_state(proc, Event.STOP, emit=emit, manually=manually)
        first = "message" if proc.options.get("shutdown_with_message") else "sigint"
        proc.stop_in_progress = True
        try:
            rest = await self._leftovers(proc)
            try:
                stopped = await terminate(
                    proc, child, [first, "sigkill"], self.sampler, self.log, rest
                )
            finally:
                rest.close()
            await self._sweep_cgroup(proc)
        finally:
            proc.stop_in_progress = False
            held, proc.held_exit = proc.held_exit, None
            if held is not None:
                self.apply_exit(proc, *held)
        if not stopped and not child.exited.done():  # it may have gone during the sweep
            reason = f"pid {child.pid} survived SIGKILL"
            self.change_state(proc, Event.KILL_FAILED, emit="errored", reason=reason)

    def respawn(self, proc: ManagedProcess, *, reason: str = "", manually: bool = True) -> None:
        """Start a slot again after ``stop_process``: PM2's counters reset, and, as PM2's
        restartProcessId, ``restart_time`` + 1 only if that stop ended a running child
        (a restart or start of a stopped, errored or waiting app is no restart)."""
        proc.history = lifecycle.on_manual_restart(proc.history, now_ms())
        self.spawn(proc, is_restart=proc.ran_before_stop)
        self.emit(proc, "restart", manually=manually, reason=reason)

    # -- what plugins call ---------------------------------------------------

    def processes(self) -> list[ManagedProcess]:
        """Every process slot, by pm_id. Read their fields; change them only through
        the daemon's methods."""
        return sorted(self.procs.values(), key=lambda p: p.pm_id)

    async def restart_process(self, proc: ManagedProcess, *, reason: str) -> None:
        """Restart ``proc`` for a plugin (memory limit, file change, cron tick).

        Graceful: SIGINT, then SIGKILL after ``kill_timeout``; a stopped app is
        started. Cluster apps with a shared socket are reloaded instead, so they
        keep serving. ``reason`` goes with the ``restart`` event.
        """
        async with self.lock(proc):
            if self.procs.get(proc.pm_id) is not proc or self.shutting_down:
                return
            self.log.info("restart", name=proc.name, pm_id=proc.pm_id, reason=reason)
            if proc.state is ProcessState.ONLINE and (proc.cluster or proc.shares_socket):
                with contextlib.suppress(StateError):
                    await reload_process(self, proc, reason=reason)
                    return
            await self.stop_process(proc)
            if self.procs.get(proc.pm_id) is not proc:
                return  # deleted (or kill_daemon) while it stopped
            if proc.state in lifecycle.STOPPED_STATES:
                with contextlib.suppress(ScriptError, OptionError, StateError):
                    self.respawn(proc, reason=reason, manually=False)

    def hold_reply(self, awaitable: Any) -> bool:
        """From a hook a command triggered: that command's reply waits for ``awaitable``
        (at most 10 s), e.g. a watch being armed; False outside a command."""
        from .replywait import hold

        return hold(awaitable)

    def request_restart(self, pm_id: int, reason: str) -> concurrent.futures.Future:
        """``restart_process`` from any thread (a watchdog observer, a timer thread)."""
        assert self.loop is not None
        proc = self.procs.get(pm_id)
        if proc is None:
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_result(None)
            return future
        coro = self.restart_process(proc, reason=reason)
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    # -- logs --------------------------------------------------------------

    def reload_logs(self) -> list[str]:
        reopened = [str(path) for path in self.logs.reopen_all()]
        self.log_file.reopen()
        self.log.info("reopened logs", count=len(reopened))
        return reopened

    # -- leftovers: what a stop reaches besides the running child's tree -------

    # the /proc scan pending for this turn of the loop, with the markers asked for;
    # the stops of one "stop all" or kill_daemon share it
    _stray_scan: tuple[asyncio.Future, set[str]] | None = None

    def _keep_group(self, proc: ManagedProcess, child: Child) -> None:
        """Remember the exited child's process group while members outlive it."""
        if proc.options.get("treekill", True) and group_alive(child.pid):
            proc.leftover_groups = {g for g in proc.leftover_groups if group_alive(g)}
            proc.leftover_groups.add(child.pid)  # no live group's id is given to a new process

    async def _leftovers(self, proc: ManagedProcess) -> Leftovers:
        """The groups ``proc``'s exited children left, and its strays, held for a stop.

        The caller closes it. Nothing with ``treekill`` off: then only the main pid
        is ever signalled.
        """
        if not proc.options.get("treekill", True):
            return Leftovers()
        if self.cgroups is not None and (proc.child is None or proc.child.cgroup is not None):
            return Enclosure(self.cgroups.of_slot(proc.unique_id))  # everything, nothing else
        proc.leftover_groups = {g for g in proc.leftover_groups if group_alive(g)}
        pids = await self._find_strays(proc.unique_id)
        strays = [Stray.pin(pid, proc.unique_id) for pid in pids]
        return Leftovers(set(proc.leftover_groups), [s for s in strays if s is not None])

    async def _find_strays(self, marker: str) -> list[int]:
        """Pids carrying ``marker`` outside the groups of running children."""
        if self._stray_scan is None:
            assert self.loop is not None
            self._stray_scan = (self.loop.create_future(), set())
            self.loop.call_soon(self._scan_strays)
        future, markers = self._stray_scan
        markers.add(marker)
        return (await asyncio.shield(future)).get(marker, [])

    def _scan_strays(self) -> None:
        assert self._stray_scan is not None
        future, markers = self._stray_scan
        self._stray_scan = None
        try:
            found = scan_strays(markers, skip_groups=set(self.children))
        except Exception as exc:  # a stop goes on without strays rather than hang
            self.log.error("cannot scan for strays", error=f"{type(exc).__name__}: {exc}")
            found = {}
        future.set_result(found)

    async def _stop_leftovers(self, proc: ManagedProcess) -> None:
        """Stop what a slot with no child left: ``kill_signal``, SIGKILL after kill_timeout."""
        rest = await self._leftovers(proc)
        try:
            if rest.alive():
                self.log.info(
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

    async def _sweep_cgroup(self, proc: ManagedProcess) -> None:
        """The end of every stop: SIGKILL whatever is still in the slot's cgroup (a process
        forked after the last signal), wait until it is empty, and remove it."""
        if self.cgroups is None:
            return
        for path in self.cgroups.of_slot(proc.unique_id):
            if set(cgroup.pids(path)) <= {os.getpid()}:
                # nothing of the app's left: at most this daemon, which the mover takes out
                # of its last child's cgroup within ~10 ms. A wait here would show a restart
                # "stopped" to other clients; prune removes the cgroup once it is empty.
                continue
            if not await cgroup.sweep(path):
                self.log.error(
                    "processes outlive cgroup.kill", name=proc.name, pids=cgroup.pids(path)
                )
        self.cgroups.prune(proc.unique_id)


def main() -> None:
    """Run the daemon in this process until it is told to stop; a reason it cannot
    becomes one ``corral daemon: ...`` line (and a record in corral.log when it can)."""
    home = paths.home()
    homelock.claim_home()  # a second daemon exits here, having touched nothing
    try:
        daemon = Daemon(home)
    except Exception as exc:
        _record_failure(home, exc)
        raise SystemExit(f"corral daemon: {exc}") from None
    try:
        asyncio.run(daemon.run())
    except CorralError as exc:  # a bad rpc_address, an address in use: run() logged it
        raise SystemExit(f"corral daemon: {exc}") from None
    if daemon.leaving == "exec" and daemon.successor is not None:
        from .handover import exec_successor

        exec_successor(daemon, *daemon.successor)  # corral update: never returns


def _record_failure(home: Path, exc: Exception) -> None:
    with contextlib.suppress(OSError, CorralError):
        paths.ensure_home(home)  # refuses an unsafe home: then nothing is written there
        fd = os.open(paths.log_file(home), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with open(fd, "a") as f:
            record = {"event": "daemon failed to start", "error": mask_text(str(exc))}
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
