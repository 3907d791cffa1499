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
import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import zmq.asyncio

from . import __version__, lifecycle, paths
from .daemonlog import DaemonLog, StructlogHandler
from .errors import ScriptError
from .events import ProcessEvent
from .hooks import PluginManager, load_plugins
from .kill import exit_words, is_corral, kill_orphan, reap_leftovers, signal_tree
from .lifecycle import Event, ProcessState
from .logs import LogFiles, log_paths, pid_path
from .monitor import TreeSampler, start_time
from .options import OptionSchema
from .output import OutputPipes
from .process import ManagedProcess
from .rpc import pid_alive
from .rpc_async import RPCServer
from .spawn import SpawnSpec, build_argv, split_args
from .state import load_state, save_state


def now_ms() -> int:
    return int(time.time() * 1000)


class Daemon:
    """The process manager. Plugins receive it in ``corral_daemon_start``."""

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
        self.sampler = TreeSampler()
        self.started_at = now_ms()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ctx: zmq.asyncio.Context | None = None
        self.server: RPCServer | None = None
        self.shutting_down = False
        self._stopped = asyncio.Event()
        self.recovered = asyncio.Event()  # set once a dead daemon's apps are back
        self._state_scheduled = False
        self.output = OutputPipes(self.manager)
        self._has_event_hooks = bool(self.manager.pm.hook.corral_process_event.get_hookimpls())
        self.event_listeners: list[Any] = []  # callables(ProcessEvent), for in-process users
        self.log_file = DaemonLog(paths.log_file(self.home))
        self.log = self.log_file.logger
        self._log_handler = StructlogHandler(self.log)
        logging.getLogger("corral").addHandler(self._log_handler)
        logging.getLogger("corral").setLevel(logging.INFO)
        self.manager.on_error.append(self._plugin_failed)
        from .commands import Commands

        self.commands = Commands(self)

    # -- running -----------------------------------------------------------

    async def run(self, ready: threading.Event | None = None) -> None:
        """Serve until ``kill_daemon`` or a termination signal."""
        self.loop = asyncio.get_running_loop()
        self.ctx = zmq.asyncio.Context()
        address = paths.rpc_address(self.home)
        self.server = RPCServer(self.ctx, address, self.commands.dispatch)
        os.chmod(paths.rpc_path(self.home), 0o600)
        paths.pid_file(self.home).write_text(str(os.getpid()))
        if not self.in_process:
            self._install_signals()
        self.log.info("daemon started", pid=os.getpid(), version=__version__, home=str(self.home))
        serving = asyncio.ensure_future(self.server.serve())
        try:
            await self._recover_previous()
            self.recovered.set()
            self.manager.daemon_started(self)
            if ready is not None:
                ready.set()
            await self._stopped.wait()
        finally:
            serving.cancel()
            await self._shutdown()

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
        await asyncio.gather(*(self.stop_process(p) for p in list(self.procs.values())))
        for proc in list(self.procs.values()):
            self.forget(proc)
        self._write_state()
        self.manager.daemon_stopped(self)
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
        logging.getLogger("corral").removeHandler(self._log_handler)
        self.log_file.close()

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
        if self._has_event_hooks:
            self.manager.call("corral_process_event", event=event)
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
            save_state(paths.state_file(self.home), apps, os.getpid())
        except OSError as exc:
            self.log.error("cannot write the state file", error=str(exc))

    def _state_entry(self, proc: ManagedProcess) -> dict[str, Any]:
        entry = self.commands.saved_entry(proc)
        entry.update(
            pm_id=proc.pm_id,
            pid=proc.pid,
            pid_started=proc.pid_started,
            history=dataclasses.asdict(proc.history),
        )
        return entry

    async def _recover_previous(self) -> None:
        """Replace the apps of a daemon that died without stopping them."""
        state = load_state(paths.state_file(self.home))
        if not state or not state["apps"]:
            return
        old_pid = state.get("daemon_pid")
        if old_pid != os.getpid() and pid_alive(old_pid) and is_corral(old_pid):
            return  # another daemon owns this home (it holds the socket); never fight it
        orphans = [
            (
                entry.get("pid"),
                entry.get("pid_started"),
                entry.get("options", {}).get("kill_timeout"),
            )
            for entry in state["apps"]
        ]
        await asyncio.gather(
            *(kill_orphan(pid, started, timeout) for pid, started, timeout in orphans)
        )
        self.log.info(
            "recovering apps of a daemon that died", count=len(state["apps"]), pid=old_pid
        )
        await self.commands.restore(state["apps"], keep_ids=True)

    # -- spawning ----------------------------------------------------------

    def new_process(self, **fields: Any) -> ManagedProcess:
        proc = ManagedProcess(**fields)
        proc.log_paths = log_paths(self.home, proc.name, proc.pm_id, proc.options)
        proc.pid_path = pid_path(self.home, proc.name, proc.pm_id, proc.options)
        with contextlib.suppress(OSError):
            proc.pid_path.parent.mkdir(parents=True, exist_ok=True)
        for key in ("out", "err", "combined"):
            path = proc.log_paths.get(key)
            if path is not None and all(f.path != path for f in proc.log_files):
                proc.log_files.append(self.logs.acquire(path))
        self.procs[proc.pm_id] = proc
        self.locks[proc.pm_id] = asyncio.Lock()
        self.mark_dirty()
        return proc

    def forget(self, proc: ManagedProcess) -> None:
        for log in proc.log_files:
            self.logs.release(log)
        proc.log_files.clear()
        self.procs.pop(proc.pm_id, None)
        self.locks.pop(proc.pm_id, None)
        self.mark_dirty()

    def lock(self, proc: ManagedProcess) -> asyncio.Lock:
        return self.locks.setdefault(proc.pm_id, asyncio.Lock())

    def spawn(self, proc: ManagedProcess, *, is_restart: bool) -> None:
        """Start the child now; raises ScriptError (state errored) if exec fails."""
        self.change_state(proc, Event.SPAWN)
        proc.exit_code = None
        options = proc.options
        spec = SpawnSpec(
            argv=build_argv(
                proc.script,
                proc.interpreter,
                proc.is_command,
                split_args(options.get("node_args")),
                split_args(options.get("args")),
            ),
            env=proc.child_env(),
            cwd=str(options.get("cwd") or self.home),
        )
        self.manager.call("corral_before_spawn", app=proc, spawn=spec)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                cwd=spec.cwd,
                env=spec.env,
                start_new_session=True,
                pass_fds=tuple(spec.pass_fds),
                user=options.get("uid"),
                group=options.get("gid"),
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            reason = f"cannot execute {spec.argv[0]}: {exc}"
            self.change_state(proc, Event.SPAWN_FAILED, emit="errored", reason=reason)
            self.log.error("spawn failed", name=proc.name, pm_id=proc.pm_id, error=str(exc))
            raise ScriptError(reason) from exc
        finally:
            with contextlib.suppress(OSError):
                os.close(out_w)
            with contextlib.suppress(OSError):
                os.close(err_w)
        proc.popen = popen
        proc.pid = popen.pid
        proc.pid_started = start_time(popen.pid)
        proc.history = lifecycle.on_spawn(proc.history, now_ms(), is_restart=is_restart)
        assert self.loop is not None
        proc.exited = self.loop.create_future()
        self.output.watch(proc, out_r, "out")
        self.output.watch(proc, err_r, "err")
        self._watch_exit(proc, popen)
        self._write_pid_file(proc)
        self.change_state(proc, Event.READY, emit="online")
        self.log.info("spawned", name=proc.name, pm_id=proc.pm_id, pid=proc.pid, restart=is_restart)

    def _write_pid_file(self, proc: ManagedProcess) -> None:
        if proc.pid_path is None:
            return
        try:
            proc.pid_path.write_text(str(proc.pid))
        except OSError as exc:
            self.log.error("cannot write the pid file", path=str(proc.pid_path), error=str(exc))

    def _remove_pid_file(self, proc: ManagedProcess) -> None:
        if proc.pid_path is not None:
            with contextlib.suppress(OSError):
                proc.pid_path.unlink()

    # -- exits -------------------------------------------------------------

    def _watch_exit(self, proc: ManagedProcess, popen: subprocess.Popen) -> None:
        assert self.loop is not None
        try:
            pidfd = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_thread, args=(proc, popen), daemon=True).start()
            return
        proc.pidfd = pidfd
        self.loop.add_reader(pidfd, self._on_pidfd, proc, popen, pidfd)

    def _on_pidfd(self, proc: ManagedProcess, popen: subprocess.Popen, pidfd: int) -> None:
        assert self.loop is not None
        self.loop.remove_reader(pidfd)
        os.close(pidfd)
        if proc.pidfd == pidfd:
            proc.pidfd = None
        self._handle_exit(proc, popen, popen.wait())

    def _wait_thread(self, proc: ManagedProcess, popen: subprocess.Popen) -> None:
        code = popen.wait()
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self._handle_exit, proc, popen, code)

    def _handle_exit(self, proc: ManagedProcess, popen: subprocess.Popen, code: int) -> None:
        if proc.popen is not popen:
            return
        self.output.drain(proc)
        proc.popen = None
        proc.pid = None
        proc.exit_code = code
        self._remove_pid_file(proc)
        policy = lifecycle.RestartPolicy.from_options(proc.options)
        now = now_ms()
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
        event_name = "restart overlimit" if decision.event is Event.OVERLIMIT else "exit"
        self.change_state(proc, decision.event, emit=event_name, reason=f"{why}; {decision.reason}")
        if proc.exited is not None and not proc.exited.done():
            proc.exited.set_result(code)
        if decision.event is Event.CRASHED and not self.shutting_down:
            self._schedule_restart(proc, decision.delay_ms)

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
        with contextlib.suppress(ScriptError):
            self.spawn(proc, is_restart=True)

    # -- stopping ----------------------------------------------------------

    async def stop_process(self, proc: ManagedProcess, *, manually: bool = False) -> None:
        """SIGINT to the process group, SIGKILL after ``kill_timeout``; PM2's stop."""
        if proc.state is ProcessState.WAITING_RESTART:
            if proc.restart_timer is not None:
                proc.restart_timer.cancel()
                proc.restart_timer = None
            self.change_state(
                proc, Event.STOP, emit="stop" if manually else None, manually=manually
            )
            return
        if proc.state is ProcessState.STOPPING:
            if proc.exited is not None:
                await asyncio.shield(proc.exited)
            return
        if proc.state not in lifecycle.RUNNING_STATES or proc.pid is None:
            return
        pid = proc.pid
        treekill = bool(proc.options.get("treekill", True))
        tree = self.sampler.descendants(pid) if treekill else []
        self.change_state(proc, Event.STOP, emit="stop" if manually else None, manually=manually)
        timeout = int(proc.options.get("kill_timeout") or 1600) / 1000
        signal_tree(pid, tree, signal.SIGINT, group=treekill)
        assert proc.exited is not None
        exited = proc.exited
        done, _ = await asyncio.wait({exited}, timeout=timeout)
        if not done:
            self.log.warning(
                "kill timeout, sending SIGKILL", name=proc.name, pm_id=proc.pm_id, pid=pid
            )
            signal_tree(pid, tree, signal.SIGKILL, group=treekill)
            done, _ = await asyncio.wait({exited}, timeout=timeout)
            if not done:
                reason = f"pid {pid} survived SIGKILL"
                self.change_state(proc, Event.KILL_FAILED, emit="errored", reason=reason)
                return
        if treekill:
            await reap_leftovers(pid, tree, timeout)

    # -- logs --------------------------------------------------------------

    def reload_logs(self) -> list[str]:
        reopened = [str(path) for path in self.logs.reopen_all()]
        self.log_file.reopen()
        self.log.info("reopened logs", count=len(reopened))
        return reopened


def main() -> None:
    """Run the daemon in this process until it is told to stop."""
    home = paths.home()
    try:
        daemon = Daemon(home)
    except Exception as exc:
        with contextlib.suppress(OSError):
            paths.ensure_home(home)
            with open(paths.log_file(home), "a") as f:
                f.write(f'{{"event": "daemon failed to start", "error": "{exc}"}}\n')
        raise SystemExit(f"corral daemon: {exc}") from None
    asyncio.run(daemon.run())


if __name__ == "__main__":
    main()
