"""The RPC commands the daemon serves, one coroutine each.

Each command validates everything first and acts after, so bad input changes
nothing. Commands on different apps run concurrently; commands on one app are
serialised by that app's lock (never a daemon-wide lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import __version__, asuser, credentials, lifecycle, paths, reconcile, replywait, stdin
from .apps import PreparedApp, check_fd_budget, check_name, prepare_app
from .changes import changed_options, refuse_fixed, refuse_moving_socket, socket_moves
from .command_table import core_commands
from .convert import signal_of
from .errors import NotFoundError, OptionError, ProtocolError, StateError, shorten
from .lifecycle import ProcessState
from .logs import log_paths, own_log_paths, pid_path
from .process import ManagedProcess
from .rollout import reload_process
from .rpc import RawJSON
from .selection import is_regex_target, same_script, select_regex, select_resolved
from .spawn import (
    merge_env,
)
from .state import load_dump, save_dump
from .upgrade import leave_for_update

if TYPE_CHECKING:
    from .daemon import Daemon


def parse_signal(value: Any) -> int:
    """``SIGUSR1``, ``USR1``, ``sigusr1`` or a number, to a signal number."""
    found = signal_of(value) if isinstance(value, (str, int)) else None
    if found is None:
        raise OptionError(
            f"unknown signal {shorten(value)}: use a name such as SIGUSR1 or SIGTERM, "
            "or its number (see `kill -l`)",
            field="signal",
        )
    return int(found)


class Commands:
    """The daemon's RPC surface. ``dispatch`` routes a request to a method."""

    CORE = core_commands()  # corral.command_table: every call, listed once

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.extra = daemon.manager.rpc_commands()
        # one config file reconcile at a time: each plans on what the one before it left
        # (two interleaved ones planned on the same apps and leaked the instances they made)
        self.reconciling = asyncio.Lock()
        clash = set(self.extra) & set(self.CORE)
        if clash:
            raise ProtocolError(f"plugins may not replace core commands: {sorted(clash)}")

    async def dispatch(self, cmd: str, args: dict[str, Any]) -> Any:
        if cmd != "ping" and not self.daemon.recovered.is_set():
            # the apps of a daemon that died are not back yet: a start now could take their ids
            await self.daemon.recovered.wait()
        if cmd in self.CORE:
            handler = getattr(self, "cmd_" + cmd)
            call_args = args
        elif cmd in self.extra:
            handler = self.extra[cmd]
            call_args = {"daemon": self.daemon.api, **args}
        else:
            known = ", ".join(sorted([*self.CORE, *self.extra]))
            raise ProtocolError(f"unknown command {shorten(cmd)} (known: {known})")
        try:
            inspect.signature(handler).bind(**call_args)
        except TypeError as exc:
            raise ProtocolError(f"bad arguments for '{cmd}': {exc}") from None
        async with replywait.collecting():  # what plugins started for it (a watch armed)
            result = handler(**call_args)
            if inspect.isawaitable(result):
                result = await result
        return result

    # -- helpers -----------------------------------------------------------

    @property
    def procs(self) -> dict[int, ManagedProcess]:
        return self.daemon.procs

    def select(self, target: Any) -> list[ManagedProcess]:
        """The processes a target names: ``all``, name, pm_id, script path, namespace, list."""
        if isinstance(target, list):
            chosen: dict[int, ManagedProcess] = {}
            for item in target:
                chosen.update((p.pm_id, p) for p in self.select(item))
            return sorted(chosen.values(), key=lambda p: p.pm_id)
        procs = sorted(self.procs.values(), key=lambda p: p.pm_id)
        if target == "all":
            return procs
        if isinstance(target, dict):
            return select_resolved(procs, target)  # a path or config file the client resolved
        if isinstance(target, bool) or not isinstance(target, (str, int)):
            raise OptionError(
                f"a target is a name, a pm_id or 'all', got {shorten(target)}", field="target"
            )
        text = str(target)
        if is_regex_target(text):
            return select_regex(procs, text)
        for matches in (
            [p for p in procs if p.name == text],
            [p for p in procs if text.isascii() and text.isdigit() and p.pm_id == int(text)],
            [p for p in procs if p.script == text or _is_script(p, text)],
            [p for p in procs if p.namespace == text],
        ):
            if matches:
                return matches
        known = sorted({p.name for p in procs})
        names = ", ".join(n if len(n) <= 40 else f"{n[:40]}..." for n in known[:10]) or "none"
        if len(known) > 10:
            names += f", ... ({len(known)} names)"
        raise NotFoundError(
            f"no process matches {shorten(text)} (names: {names}); `corral ls` lists them"
        )

    def describe_all(self, procs: list[ManagedProcess]) -> list[dict[str, Any]]:
        self.sample(procs)
        return [p.to_dict() for p in procs]

    def sample(self, procs: list[ManagedProcess]) -> None:
        """Fresh memory and CPU figures (``monit``) for the running ones of ``procs``."""
        running = [p for p in procs if p.pid and p.state in lifecycle.RUNNING_STATES]
        figures = self.daemon.sampler.sample([p.pid for p in running if p.pid])
        for proc in running:
            proc.monit = figures.get(proc.pid or 0, (0, 0.0))

    def next_id(self) -> int:
        return max(self.procs, default=-1) + 1

    def prepare(
        self, raw: dict[str, Any], cwd: str, env: dict[str, str], env_name: str | None
    ) -> PreparedApp:
        app = prepare_app(self.daemon.schema, raw, cwd, env, env_name)
        self.daemon.manager.validate_app(app.options, app.interpreter)
        return app

    def plan_changes(
        self, procs: list[ManagedProcess], options: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The validated ``options`` of a restart or reload of ``procs``, checked for each
        of them (as start checks, then by the plugins) before any is touched."""
        if not options:
            return {}
        changes, warnings = self.daemon.schema.normalize_update(options)
        refuse_fixed(changes, procs)
        for proc in procs:
            after = changed_options(self.daemon, proc, changes)
            self.daemon.manager.validate_app(after, proc.interpreter)
            self.check_logs_for(proc, after)
        for warning in warnings:
            self.daemon.log.warning("option warning", warning=warning)
        return changes

    def check_logs_for(self, proc: ManagedProcess, options: dict[str, Any]) -> None:
        """OptionError if ``options`` run ``proc`` as an account that could not open the
        log files it holds (opened once, at creation, as the account of that time)."""
        creds = credentials.resolve(options)
        if not asuser.needed(creds) or creds == self.daemon.credentials(proc):
            return
        own = own_log_paths(self.daemon.home, proc.name, proc.pm_id, proc.options)
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
        for stream, path in proc.log_paths.items():
            if path is None or path in own:
                continue
            try:
                os.close(asuser.open_as(creds, str(path), flags))
            except OSError as exc:
                field = _LOG_OPTIONS[stream]
                raise OptionError(_cannot_open(field, path, exc, creds), field=field) from None

    def create(self, app: PreparedApp, instance: int, pm_id: int | None = None) -> ManagedProcess:
        """Register a process of ``app``; OptionError (and nothing registered) if a log
        file cannot be opened."""
        pm_id = self.next_id() if pm_id is None else pm_id
        where = pid_path(self.daemon.home, app.name, pm_id, app.options)
        self.daemon.pid_files.claim(where, credentials.resolve(app.options))
        with self._logs_open(app, pm_id):
            return self.daemon.new_process(
                pm_id=pm_id,
                name=app.name,
                options=dict(app.options),
                env=dict(app.env),
                script=app.script,
                interpreter=app.interpreter,
                is_command=app.is_command,
                instance=instance,
            )

    @contextlib.contextmanager
    def _logs_open(self, app: PreparedApp, pm_id: int) -> Iterator[None]:
        """Hold the log files of ``app``'s process ``pm_id`` open while the block runs.

        Opened before the process is registered, so a file that cannot be opened
        names its option and leaves nothing half-made.
        """
        logs = self.daemon.logs
        held = []
        creds = credentials.resolve(app.options)  # opened as the app's account (asuser.py)
        own = own_log_paths(self.daemon.home, app.name, pm_id, app.options)
        try:
            for stream, path in log_paths(self.daemon.home, app.name, pm_id, app.options).items():
                if path is None:
                    continue
                try:
                    held.append(logs.acquire(path, creds, own=path in own))
                except OSError as exc:
                    field = _LOG_OPTIONS[stream]
                    raise OptionError(_cannot_open(field, path, exc, creds), field=field) from None
            yield
        finally:
            for log in held:
                logs.release(log)

    async def _undo(self, procs: list[ManagedProcess]) -> None:
        """Remove processes a failed command created (stopping those it started)."""
        for proc in procs:
            await proc.slot.stop_process()
            self.daemon.forget(proc)

    def launch(self, proc: ManagedProcess, *, is_restart: bool = False) -> None:
        """Spawn a registered process; a failed exec removes a process that never ran."""
        if not is_restart:
            proc.history = lifecycle.on_start(proc.history, _now())
        proc.slot.spawn(is_restart=is_restart)

    def saved_entry(self, proc: ManagedProcess) -> dict[str, Any]:
        """What a dump (and the state file) keeps of a process."""
        return {
            "name": proc.name,
            "options": proc.options,
            "env": proc.env,
            "instance": proc.instance,
            "status": proc.state.value,
            "unique_id": proc.unique_id,
            "config_file": proc.config_file,
        }

    # -- commands ----------------------------------------------------------

    def cmd_ping(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": __version__,
            "home": str(self.daemon.home),
            "uptime_ms": _now() - self.daemon.started_at,
            "apps": len(self.procs),
            "recovering": not self.daemon.recovered.is_set(),
            **self.daemon.install,  # version, install_path, python (corral.upgrade)
        }

    async def cmd_start(
        self,
        apps: list[dict[str, Any]],
        cwd: str,
        env: dict[str, str] | None = None,
        env_name: str | None = None,
        from_config: bool = False,
        action: str = "restart",
        config_file: str | None = None,
        prune: bool = False,
        dry_run: bool = False,
        only: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(apps, list) or not apps:
            raise OptionError("start needs at least one app", field="apps")
        # every unknown key of the batch (a config file's) in one error, before any other
        self.daemon.schema.check_unknown(apps, labels=from_config or len(apps) > 1)
        caller_env = dict(env or os.environ)
        prepared = [self.prepare(raw, cwd, caller_env, env_name) for raw in apps]
        for app in prepared:
            check_name(app.name)  # here, not in prepare: a dump's old app still comes back
        if from_config:  # a config file's apps: brought in line with it (corral.reconcile)
            async with self.reconciling:
                reply = await reconcile.apply(
                    self,
                    prepared,
                    action=action,
                    config_file=config_file,
                    prune=prune,
                    dry_run=dry_run,
                    only=only,
                )
            reply["warnings"] = [w for app in prepared for w in app.warnings]
            return reply
        if prune or dry_run:
            raise OptionError("prune and dry_run apply to a config file's apps", field="apps")
        plans = [self._plan_start(app, from_config) for app in prepared]
        # the batch's new apps start all or none: a failure removes every one of them
        created: dict[int, list[ManagedProcess]] = {}  # by index in plans
        try:
            for index, (app, existing) in enumerate(plans):
                for i in range(0 if existing else app.count):
                    created.setdefault(index, []).append(self.create(app, i))
            for proc in (p for procs in created.values() for p in procs):
                if proc.options.get("autostart", True):
                    self.launch(proc)
                    self.daemon.emit(proc, "start", manually=True)
        except Exception:
            await self._undo([p for procs in created.values() for p in procs])
            raise
        started: list[ManagedProcess] = []
        for index, (app, existing) in enumerate(plans):
            started.extend(existing or created[index])
            await asyncio.gather(*(self._restart_with(p, app) for p in existing))
        await self._wait_ready([p for p in started if p.waits_for_ready])
        warnings = [w for app in prepared for w in app.warnings]
        for warning in warnings:
            self.daemon.log.warning("option warning", warning=warning)
        # what happened per app (corral.actions): the client's lines say it
        actions = [
            {"name": app.name, "action": "restarted" if existing else "started"}
            for app, existing in plans
        ]
        reply = {"processes": self.describe_all(started), "warnings": warnings}
        return {**reply, "actions": actions}

    async def create_all(self, apps: list[PreparedApp]) -> list[ManagedProcess]:
        """Register every instance of ``apps``, none launched: all of them, or none."""
        created: list[ManagedProcess] = []
        try:
            for app in apps:
                for i in range(app.count):
                    created.append(self.create(app, i))
        except Exception:
            await self._undo(created)
            raise
        return created

    async def launch_all(self, created: list[ManagedProcess]) -> None:
        """Launch what :meth:`create_all` registered; a failure removes all of them."""
        try:
            for proc in created:
                if self.procs.get(proc.pm_id) is not proc:
                    continue  # deleted while the command awaited (a replaced app's stop)
                if proc.options.get("autostart", True):
                    self.launch(proc)
                    self.daemon.emit(proc, "start", manually=True)
        except Exception:
            await self._undo(created)
            raise

    def _plan_start(self, app: PreparedApp, from_config: bool) -> tuple[PreparedApp, list]:
        existing = sorted(
            (p for p in self.procs.values() if p.name == app.name), key=lambda p: p.pm_id
        )
        if not existing or app.options.get("force"):
            return app, []
        conflict = reconcile.identity_conflict(app, existing)
        if conflict:
            raise StateError(conflict)
        running = [p for p in existing if p.state in lifecycle.RUNNING_STATES]
        other = existing[0]
        if not from_config and (other.script, other.is_command) != (app.script, app.is_command):
            ids = ", ".join(str(p.pm_id) for p in existing)
            how = "runs" if running else "is stopped with"
            raise StateError(
                f"an app named '{app.name}' {how} {shorten(other.script)} (pm_id {ids}), "
                f"so {shorten(app.script)} was not started: give it another name (--name), "
                "or delete that app first"
            )
        if running and not from_config:
            ids = ", ".join(str(p.pm_id) for p in running)
            raise StateError(
                f"app '{app.name}' is already running (pm_id {ids}): restart it, "
                "or start with force=True (--force) for another copy"
            )
        for proc in existing:  # restarted with these options: the same check as restart
            self.check_logs_for(proc, app.options)
        return app, sorted(existing, key=lambda p: p.pm_id)

    async def _restart_with(self, proc: ManagedProcess, app: PreparedApp) -> None:
        """Restart an existing process with the options and env of a new start."""
        async with self.daemon.lock(proc):
            await proc.slot.stop_process(manually=True)
            proc.options = dict(app.options)
            proc.env = {**proc.env, **app.env}
            # the config file's script too: restart refuses to change it, start brings it in line
            proc.script, proc.interpreter = app.script, app.interpreter
            proc.is_command = app.is_command
            proc.slot.respawn()

    async def _each(self, target: Any, action: Any) -> list[dict[str, Any]]:
        procs = self.select(target)
        await asyncio.gather(*(action(p) for p in procs))
        return self.describe_all(procs)

    async def cmd_stop(self, target: Any) -> list[dict[str, Any]]:
        async def stop(proc: ManagedProcess) -> None:
            async with self.daemon.lock(proc):
                await proc.slot.stop_process(manually=True)

        return await self._each(target, stop)

    async def cmd_restart(
        self,
        target: Any,
        update_env: bool = False,
        env: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        procs = self.select(target)
        changes = self.plan_changes(procs, options)
        moves = socket_moves(self.daemon, changes, procs)

        async def restart(proc: ManagedProcess) -> None:
            move = moves.get(proc.name)
            try:
                async with self.daemon.lock(proc):
                    new_options = changed_options(self.daemon, proc, changes)  # before the stop
                    await proc.slot.stop_process(manually=True)
                    proc.options = new_options  # replaced, never changed in place
                    if update_env:
                        proc.env = merge_env(dict(env or os.environ), proc.options.get("env"))
                    if move is not None:
                        move.arrive(proc)
                        await move.all_stopped.wait()  # the old socket is closed now
                    proc.slot.respawn()
            finally:
                if move is not None:
                    move.arrive(proc)  # a failed instance holds no other up

        await asyncio.gather(*(restart(p) for p in procs))
        await self._wait_ready([p for p in procs if p.waits_for_ready])
        return self.describe_all(procs)

    async def _wait_ready(self, procs: list[ManagedProcess]) -> None:
        """Return once each process's child is ready, gone, or past ``listen_timeout``
        (``start``, ``restart``, ``scale`` and a fork-mode ``reload`` with ``wait_ready``,
        as PM2's executeApp answers only then)."""
        waits = [p.child.ready for p in procs if p.child is not None]
        if waits:
            limit = max(p.listen_timeout for p in procs)
            await asyncio.wait(waits, timeout=limit + 1)

    async def cmd_reload(
        self,
        target: Any,
        update_env: bool = False,
        env: dict[str, str] | None = None,
        graceful: bool = False,
        parallel: int = 1,
        options: dict[str, Any] | None = None,
        env_is_final: bool = False,
    ) -> list[dict[str, Any]]:
        """Rolling reload: each instance's new child is ready before its old one stops.

        With ``update_env``, the app's ``env`` option is laid over ``env`` (the caller's),
        unless ``env_is_final``: ``env`` is then the app's whole env (a config file's,
        its ``env_<name>`` already applied).

        Apps that neither run in cluster mode nor share a socket are restarted, as
        PM2 does in fork mode. The first failed instance stops the rollout (the
        rest keep their old children) and raises.
        """
        if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
            raise OptionError(
                "parallel must be an integer >= 1 (instances replaced at once), "
                f"got {shorten(parallel)}",
                field="parallel",
            )
        procs = self.select(target)
        changes = self.plan_changes(procs, options)
        refuse_moving_socket(changes, procs)
        gate = asyncio.Semaphore(parallel)
        failures: list[str] = []

        async def reload(proc: ManagedProcess) -> None:
            async with gate:
                if await reload_one(proc) and proc.waits_for_ready:
                    # restarted: ready (or listen_timeout) before the next instance goes,
                    # outside the slot's lock, so a stop need not wait for it
                    await self._wait_ready([proc])

        async def reload_one(proc: ManagedProcess) -> bool:
            """Reload ``proc``; True if it was restarted instead (not a rolling reload)."""
            async with self.daemon.lock(proc):
                if failures:
                    return False
                before = (dict(proc.options), dict(proc.env))
                # replaced, never changed in place
                proc.options = changed_options(self.daemon, proc, changes)
                if update_env:
                    layer = None if env_is_final else proc.options.get("env")
                    proc.env = merge_env(dict(env or os.environ), layer)
                rolling = proc.cluster or proc.shares_socket
                if not rolling or proc.state is not ProcessState.ONLINE:
                    await proc.slot.stop_process(manually=True)
                    proc.slot.respawn()
                    return True
                try:
                    await reload_process(self.daemon, proc, graceful=graceful)
                except StateError as exc:
                    proc.options, proc.env = before  # the old version keeps serving
                    failures.append(str(exc))
                return False

        await asyncio.gather(*(reload(p) for p in procs))
        if failures:
            raise StateError("; ".join(failures))
        return self.describe_all(procs)

    async def cmd_scale(self, name: str, count: Any) -> list[dict[str, Any]]:
        """Run ``count`` instances of the app ``name``; ``"+2"``/``"-1"`` are relative."""
        procs = sorted((p for p in self.procs.values() if p.name == name), key=lambda p: p.pm_id)
        if not procs:
            raise NotFoundError(f"no app named {shorten(name)}; `corral ls` lists them")
        wanted = _scale_target(count, len(procs))
        if wanted > len(procs):
            try:
                check_fd_budget(wanted - len(procs))
            except OptionError as exc:
                raise OptionError(
                    f"scale {shorten(name)} to {wanted}: {exc}", field="count"
                ) from None
        for proc in procs[wanted:][::-1]:
            async with self.daemon.lock(proc):
                await proc.slot.stop_process(manually=True)
                self.daemon.emit(proc, "delete", manually=True)
                self.daemon.forget(proc)
        template = procs[0]
        app = PreparedApp(
            name,
            template.options,
            template.env,
            template.script,
            template.interpreter,
            template.is_command,
            count=wanted,
        )
        taken = {p.instance for p in procs[:wanted]}
        free = (i for i in range(wanted * 2 + 1) if i not in taken)
        added: list[ManagedProcess] = []
        try:  # all the new instances or none
            for _ in range(wanted - len(procs)):
                added.append(self.create(app, next(free)))
            for proc in added:
                self.launch(proc)
                self.daemon.emit(proc, "start", manually=True)
        except Exception:
            await self._undo(added)
            raise
        await self._wait_ready([p for p in added if p.waits_for_ready])
        return self.describe_all(
            sorted((p for p in self.procs.values() if p.name == name), key=lambda p: p.pm_id)
        )

    def cmd_send_line(self, pm_id: Any, line: Any) -> dict[str, Any]:
        """PM2's sendLineToStdin: ``line`` and a newline to the stdin of ``pm_id``."""
        return stdin.send_line(self.daemon, pm_id, line)

    def cmd_send_data_to_process_id(self, pm_id: Any, packet: Any) -> dict[str, Any]:
        """PM2's sendDataToProcessId: the packet goes to the child unchanged."""
        if not isinstance(packet, dict) or "data" not in packet or "topic" not in packet:
            raise OptionError(
                "a packet is an object with 'topic' and 'data' (PM2's shape), "
                f"got {shorten(packet)}",
                field="packet",
            )
        if isinstance(pm_id, str) and pm_id.isascii() and pm_id.isdigit():
            pm_id = int(pm_id)
        proc = self.procs.get(pm_id) if isinstance(pm_id, int) else None
        if proc is None:
            raise NotFoundError(f"no process has pm_id {shorten(pm_id)}; `corral ls` lists them")
        if proc.state not in lifecycle.RUNNING_STATES:
            raise StateError(f"process {pm_id} ({proc.name}) is {proc.state.value}, not online")
        packet = {**packet, "id": pm_id}
        proc.slot.send_message(packet)
        return {"success": True, "data": packet}

    async def cmd_delete(self, target: Any) -> list[dict[str, Any]]:
        procs = self.select(target)

        async def delete(proc: ManagedProcess) -> None:
            async with self.daemon.lock(proc):
                await proc.slot.stop_process(manually=True)
                self.daemon.emit(proc, "delete", manually=True)
                self.daemon.forget(proc)

        await asyncio.gather(*(delete(p) for p in procs))
        return [p.to_dict() for p in procs]

    def cmd_list(self) -> RawJSON:
        """Every process in the ``pm2 jlist`` shape, encoded here (see ManagedProcess.to_json)."""
        procs = sorted(self.procs.values(), key=lambda p: p.pm_id)
        self.sample(procs)
        return RawJSON(("[" + ",".join(p.to_json() for p in procs) + "]").encode())

    def cmd_describe(self, target: Any) -> list[dict[str, Any]]:
        return self.describe_all(self.select(target))

    def save_dump(self, force: bool) -> dict[str, Any]:
        entries = [self.saved_entry(p) for p in sorted(self.procs.values(), key=lambda p: p.pm_id)]
        if not entries and not force:
            raise StateError(
                "the process list is empty, so nothing was dumped: "
                "pass force=True (--force) to save an empty list"
            )
        path = paths.dump_file(self.daemon.home)
        aside = save_dump(path, entries)
        if aside is None:
            return {"path": str(path), "count": len(entries)}
        warning = f"the dump {path} did not read: moved it to {aside} (the .bak is kept)"
        self.daemon.log.warning("broken dump moved aside", path=str(path), to=str(aside))
        return {"path": str(path), "count": len(entries), "warnings": [warning]}

    def cmd_dump(self, force: bool = False) -> dict[str, Any]:
        return self.save_dump(force)

    async def cmd_resurrect(self) -> dict[str, Any]:
        dump = load_dump(paths.dump_file(self.daemon.home))
        warnings = [dump.warning] if dump.warning else []
        for warning in warnings:
            self.daemon.log.warning("resurrect from the backup", warning=warning)
        running = {p.name for p in self.procs.values()}
        restored = await self.restore([e for e in dump.apps if e.get("name") not in running])
        reply = {"processes": self.describe_all(restored), "warnings": warnings}
        return {**reply, "actions": self._reused({e.get("name") for e in dump.apps} & running)}

    def _reused(self, names: set[str]) -> list[dict[str, Any]]:
        """The apps a resurrect left as they run (corral.actions: ``reused``)."""
        reused = []
        for name in sorted(names):
            procs = sorted(
                (p for p in self.procs.values() if p.name == name), key=lambda p: p.pm_id
            )
            statuses = [p.state.value for p in procs]
            status = statuses[0] if len(set(statuses)) == 1 else "mixed"
            ids = [p.pm_id for p in procs]
            reused.append({"name": name, "action": "reused", "pm_ids": ids, "status": status})
        return reused

    async def restore(
        self, entries: list[dict[str, Any]], *, keep_ids: bool = False
    ) -> list[ManagedProcess]:
        """Bring back saved processes; an entry that no longer validates is logged and skipped."""
        restored = []
        for entry in entries:
            try:
                options = dict(entry["options"])
                app = self.prepare(
                    options, options.get("cwd") or "/", dict(entry.get("env") or {}), None
                )
                app.env = dict(entry.get("env") or app.env)
                pm_id = (
                    entry.get("pm_id")
                    if keep_ids and entry.get("pm_id") not in self.procs
                    else None
                )
                proc = self.create(app, int(entry.get("instance") or 0), pm_id)
                proc.config_file = entry.get("config_file")
            except Exception as exc:
                self.daemon.log.error("cannot restore app", name=entry.get("name"), error=str(exc))
                continue
            if keep_ids and entry.get("history"):
                proc.history = lifecycle.RestartHistory(**entry["history"])
            restored.append(proc)
            status = entry.get("status")
            if status == "stopped" or (keep_ids and status == "errored"):
                continue
            try:
                if keep_ids:
                    proc.slot.spawn(is_restart=True)
                else:
                    self.launch(proc)
            except Exception as exc:
                self.daemon.log.error("cannot restart restored app", name=proc.name, error=str(exc))
        return restored

    def cmd_flush(self, target: Any = None) -> list[str]:
        procs = self.select(target) if target is not None else list(self.procs.values())
        flushed = []
        for proc in procs:
            creds = self.daemon.credentials(proc)
            for path in {p for p in proc.log_paths.values() if p is not None}:
                if self.daemon.logs.truncate(path, creds):
                    flushed.append(str(path))
        if target is None:
            log_path = paths.log_file(self.daemon.home)
            os.truncate(log_path, 0)
            flushed.append(str(log_path))
        return flushed

    def cmd_reset(self, target: Any) -> list[dict[str, Any]]:
        """PM2's resetMetaProcessId: restart_time and unstable_restarts to 0, created_at now."""
        procs = self.select(target)
        now = int(time.time() * 1000)
        for proc in procs:
            proc.history = lifecycle.on_reset(proc.history, now)
        return self.describe_all(procs)

    async def cmd_send_signal_to_process_name(
        self, signal: Any, target: Any
    ) -> list[dict[str, Any]]:
        number = parse_signal(signal)
        procs = self.select(target)
        for proc in procs:
            if proc.pid and proc.state in lifecycle.RUNNING_STATES:
                os.kill(proc.pid, number)
        return self.describe_all(procs)

    async def cmd_send_signal_to_process_id(self, pm_id: Any, signal: Any) -> list[dict[str, Any]]:
        number = parse_signal(signal)
        if str(pm_id) not in {str(i) for i in self.procs}:
            raise NotFoundError(f"no process has pm_id {shorten(pm_id)}; `corral ls` lists them")
        proc = self.procs[int(pm_id)]
        if not proc.pid or proc.state not in lifecycle.SIGNALLABLE_STATES:
            raise StateError(
                f"process {pm_id} ({proc.name}) is {proc.state.value}: it has no pid to signal"
            )
        os.kill(proc.pid, number)
        return self.describe_all([proc])

    def cmd_plugins(self) -> list[dict[str, Any]]:
        return self.daemon.manager.plugin_records()

    def cmd_options(self) -> list[dict[str, Any]]:
        return [
            {
                "name": o.name,
                "type": o.type,
                "default": o.default,
                "aliases": list(o.aliases),
                "help": o.help,
                "choices": list(o.choices),
                "plugin": o.plugin,
            }
            for o in self.daemon.schema
        ]

    async def cmd_kill_daemon(self) -> dict[str, Any]:
        self.daemon.shutting_down = True  # first: a restart in flight must not spawn now
        procs = list(self.procs.values())
        await asyncio.gather(*(p.slot.stop_process(manually=True) for p in procs))
        for proc in procs:
            self.daemon.emit(proc, "delete", manually=True)
            self.daemon.forget(proc)
        self.daemon.request_stop()
        return {"pid": os.getpid(), "stopped": len(procs)}

    def cmd_update(self, python: str | None = None, pythonpath: str | None = None) -> Any:
        return leave_for_update(self.daemon, python, pythonpath)


_LOG_OPTIONS = {"out": "out_file", "err": "error_file", "combined": "log_file"}


def _cannot_open(field: str, path: Any, exc: OSError, creds: credentials.Credentials | None) -> str:
    """The one line saying why a log file of ``field`` cannot be opened, and what to do."""
    if exc.errno == errno.ELOOP:
        return (
            f"{field} {shorten(str(path))} is a symbolic link: "
            "corral never opens a log through one; name the file itself"
        )
    if asuser.needed(creds) and isinstance(exc, PermissionError):
        assert creds is not None
        return (
            f"{field} {shorten(str(path))} cannot be opened by user {creds.user}, "
            f"whom the app runs as: {exc.strerror}: name a file that user can write"
        )
    return (
        f"{field} {shorten(str(path))} cannot be opened: {exc.strerror or exc}: "
        "name a file in a directory you can write to"
    )


def _scale_target(count: Any, current: int) -> int:
    """``count`` as an absolute instance count; ``"+2"`` and ``"-1"`` are relative."""
    text = str(count).strip()
    try:
        number = int(text)
    except ValueError:
        raise OptionError(
            f"scale needs a number of instances (8) or a change (+2, -1), got {shorten(count)}",
            field="count",
        ) from None
    wanted = current + number if text[0] in "+-" else number
    if wanted < 0:
        raise OptionError(f"scale {shorten(count)} would leave {wanted} instances", field="count")
    return wanted


def _is_script(proc: ManagedProcess, text: str) -> bool:
    return os.path.isabs(text) and same_script(proc, text)


def _now() -> int:
    return int(time.time() * 1000)


__all__ = ["Commands", "parse_signal"]
