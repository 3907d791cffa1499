"""The daemon's kernel: one asyncio loop, its signals, the state file, recovery
(corral.daemon.recovery) and the one place a state changes.

Each pm_id's children belong to its :class:`corral.supervisor.slot.Slot` (``proc.slot``),
which spawns them through ``daemon.system`` (corral.supervisor.system), reaps their exits
(corral.supervisor.reaper) and stops them (corral.supervisor.stopper). Every state change goes
through :meth:`Daemon.change_state`, which records it, emits ``corral_process_event``
and marks the state file for rewriting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

import zmq.asyncio

from corral import __version__, paths
from corral.api import DaemonAPI
from corral.daemon import homelock, limits, settings
from corral.daemon import ready as ready_pipe
from corral.daemon.commands import Commands
from corral.daemon.commands.dumps import save_dump
from corral.daemon.fanout import EventFanout
from corral.daemon.log import DaemonLog, StructlogHandler
from corral.daemon.recovery import Recovery
from corral.daemon.replywait import hold
from corral.daemon.state import SpawnJournal
from corral.daemon.statefile import StateFile
from corral.daemon.upgrade import install_info
from corral.errors import CorralError
from corral.hooks import PluginManager, load_plugins
from corral.options.schema import OptionSchema
from corral.options.secrets import KnownSecrets, mask_text
from corral.rpc.aio import RPCServer
from corral.supervisor import cgroup, cgroup_home, credentials, envshare, lifecycle
from corral.supervisor.fdholder import HolderLink
from corral.supervisor.fdreserve import FdReserve
from corral.supervisor.heaptrim import HeapTrim
from corral.supervisor.kill import terminate
from corral.supervisor.lifecycle import Event
from corral.supervisor.listen import Listeners
from corral.supervisor.logs import LogFiles, log_paths, own_log_paths, pid_path
from corral.supervisor.monitor import TreeSampler, ancestors
from corral.supervisor.notify import Notifier
from corral.supervisor.output import OutputPipes
from corral.supervisor.pidfile import PidFiles
from corral.supervisor.process import Child, ManagedProcess, now_ms
from corral.supervisor.slot import Slot
from corral.supervisor.spawn import own_preload
from corral.supervisor.strays import StrayScan
from corral.supervisor.system import System


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
        self.manager: PluginManager = load_plugins(plugins, paths.plugins_cache())
        self.schema = OptionSchema(self.manager.app_options())
        self.procs: dict[int, ManagedProcess] = {}
        self._named: dict[str, dict[int, ManagedProcess]] = {}  # name -> its slots, by pm_id
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
        self.state_file = StateFile(self)  # what the next daemon recovers from
        self.heap: HeapTrim | None = None  # gives freed heap back after a burst (detached)
        self.api = DaemonAPI(self)  # what plugins see of this daemon
        self.output = OutputPipes(self.manager, self.api)
        self.children: dict[int, tuple[ManagedProcess, Child]] = {}  # by pid, for sd_notify
        self.listeners = Listeners()
        self.notify: Notifier | None = None
        self.journal: SpawnJournal | None = None
        self.cgroups: cgroup_home.Cgroups | None = None  # each child in a cgroup, where possible
        self.recovery = Recovery(self)  # what the last daemon of this home left
        self.fanout = EventFanout(self.manager, self.api)  # where emit's events go
        self.strays = StrayScan(self)  # one /proc scan per loop turn, shared by the stops
        self.fds = FdReserve()  # a spawn and a state write still work at the fd limit
        self.system = System()  # fork/exec, pidfd, wait: what a test may replace
        self.log_file = DaemonLog(paths.log_file(self.home))
        self.log = self.log_file.logger
        self.log_file.known_secrets = KnownSecrets(
            lambda: [p.env for p in self.procs.values()],
            version=lambda: (envshare.generation(), len(self.procs)),  # O(1) per record
        )
        self.log_file.watch(self.logs)  # a failing app log file is reported once per streak
        self._log_handler = StructlogHandler(self.log)
        logging.getLogger("corral").addHandler(self._log_handler)
        logging.getLogger("corral").setLevel(logging.INFO)
        self.manager.on_error.append(self._plugin_failed)
        self.commands = Commands(self)

    # -- running -----------------------------------------------------------

    async def run(self, ready: threading.Event | None = None) -> None:
        """Serve until ``kill_daemon`` or a termination signal."""
        homelock.hold(self.home)  # one daemon per home: before any file or socket is touched
        self.loop = asyncio.get_running_loop()
        # the settings (corral.yaml, if any) and the plugins' endpoints (TCP, if asked) first:
        # a bad setting, or an address that cannot be bound, stops the start here
        settings.check(self.home, self.manager)
        listeners = self.manager.call_checked("corral_rpc_listeners", daemon=self.api)
        self.ctx = zmq.asyncio.Context()
        address = paths.rpc_address(self.home)
        self.server = RPCServer(self.ctx, address, self.commands.dispatch, log=self.log)
        os.chmod(paths.rpc_path(self.home), 0o600)
        self.notify = Notifier(self.home / "notify.sock", self._on_notify)
        self.journal = SpawnJournal(paths.journal_file(self.home))
        homelock.write_pid_file(self.home)
        if not self.in_process:  # a detached daemon's pipes outlive it (corral.supervisor.fdholder)
            # before the cgroups open: the holder must not be born in an app's cgroup
            self.output.holder = HolderLink.open(self.home, self.log)
        self.recovery.previous_cgroups, self.cgroups = cgroup_home.open_home(
            self.home, cgroup.wanted(self.in_process)
        )  # the detached daemon began it at its start (corral.daemon.main)
        if not self.in_process:
            self._install_signals()
            self.heap = HeapTrim(self.loop)
        self.system.start_spawner(self.loop, self.log, self.cgroups, lambda: len(self.children))
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
            ready_pipe.tell()  # the client that spawned this daemon wakes (corral.daemon.ready)
            await self.recovery.run()
            self.recovered.set()
            if ready is not None:
                ready.set()
            await self._stopped.wait()
        finally:
            serving.cancel()
            await self._shutdown()
            for listener in (listener for opened in listeners for listener in opened):
                await listener.close()

    def _install_signals(self) -> None:
        assert self.loop is not None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.loop.add_signal_handler(sig, self._on_terminate, sig)
        # PM2 reopens the logs on SIGUSR2: the logrotate plugin claims it (DaemonAPI.handle_signal);
        # without it the signal is logged and ignored, never left to kill the daemon
        self.loop.add_signal_handler(signal.SIGUSR2, self.unclaimed_signal, signal.SIGUSR2)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def unclaimed_signal(self, sig: int) -> None:
        """A signal that is no plugin's now (SIGUSR2 without logrotate): logged, ignored."""
        self.log.warning("signal ignored: no plugin handles it", signal=signal.Signals(sig).name)

    def _on_terminate(self, sig: int) -> None:
        # PM2 dumps the list on SIGTERM/SIGINT/SIGQUIT before stopping everything
        self.log.info("terminating on signal", signal=signal.Signals(sig).name)
        with contextlib.suppress(Exception):
            save_dump(self.commands, force=False)
        self.request_stop()

    def request_stop(self) -> None:
        self.shutting_down = True
        self._stopped.set()

    async def _shutdown(self) -> None:
        self.shutting_down = True
        if self.leaving is None:  # an update leaves every app running for the next daemon
            await asyncio.gather(*(p.slot.stop_process() for p in list(self.procs.values())))
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
        if self.leaving != "exec":  # else the next image of this process takes it over
            self.system.close()
        self.state_file.write()
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
        """A process event to the plugins and listeners (corral.daemon.fanout), or held."""
        self.fanout.emit(proc, name, manually=manually, reason=reason)

    def _plugin_failed(self, plugin: str, hook_name: str, exc: BaseException) -> None:
        self.log.error(
            "plugin failed", plugin=plugin, hook=hook_name, error=f"{type(exc).__name__}: {exc}"
        )

    # -- the state file ----------------------------------------------------

    def mark_dirty(self) -> None:
        """Rewrite the state file soon, once, however many changes come first."""
        self.state_file.mark_dirty()
        if self.heap is not None:
            self.heap.poke()

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
        Slot(self, proc)  # proc.slot: what spawns, stops and restarts it
        self.procs[proc.pm_id] = proc
        self._named.setdefault(proc.name, {})[proc.pm_id] = proc
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
        self._named.get(proc.name, {}).pop(proc.pm_id, None)
        self.locks.pop(proc.pm_id, None)
        self._count_instances(proc.name)
        self.mark_dirty()

    def _count_instances(self, name: str) -> None:
        same = self._named.get(name) or self._named.pop(name, {})  # an empty one goes
        for proc in same.values():
            proc.instances_of_app = len(same)

    def lock(self, proc: ManagedProcess) -> asyncio.Lock:
        return self.locks.setdefault(proc.pm_id, asyncio.Lock())

    def credentials(self, proc: ManagedProcess) -> credentials.Credentials | None:
        """The account ``proc``'s files are opened as (None: the daemon's), once per options."""
        cached = self._creds.get(proc.pm_id)
        if cached is None or cached[0] is not proc.options:
            cached = self._creds[proc.pm_id] = (proc.options, credentials.resolve(proc.options))
        return cached[1]

    def _on_notify(self, pid: int, fields: dict[str, str]) -> None:
        for candidate in [pid, *ancestors(pid)]:
            found = self.children.get(candidate)
            if found is not None:
                found[0].slot.on_notify(found[1], fields)
                return

    # -- what plugins call ---------------------------------------------------

    def processes(self) -> list[ManagedProcess]:
        """Every process slot, by pm_id (read their fields; change them through the daemon)."""
        return sorted(self.procs.values(), key=lambda p: p.pm_id)

    def hold_reply(self, awaitable: Any) -> bool:
        """From a hook a command triggered: that command's reply waits for ``awaitable``
        (at most 10 s), e.g. a watch being armed; False outside a command."""
        return hold(awaitable)

    def request_restart(self, pm_id: int, reason: str) -> concurrent.futures.Future:
        """``Slot.restart_process`` from any thread (a watchdog observer, a timer thread)."""
        assert self.loop is not None
        proc = self.procs.get(pm_id)
        if proc is None:
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_result(None)
            return future
        coro = proc.slot.restart_process(reason=reason)
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


def main() -> None:
    """Run the daemon in this process until it is told to stop; a reason it cannot
    becomes one ``corral daemon: ...`` line (and a record in corral.log when it can)."""
    home = paths.home()
    homelock.claim_home()  # a second daemon exits here, having touched nothing
    limits.raise_fd_limit()  # soft RLIMIT_NOFILE up to the hard limit, as node does for PM2
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
        from corral.daemon.handover import (
            exec_successor,  # deferred: only an update's exec needs it
        )

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
