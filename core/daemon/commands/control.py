"""The commands that stop, restart, reload and delete processes.

Each checks the options it changes for every process it names before it touches
one; a process's stop, restart or reload holds that process's lock.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from corral.daemon.changes import changed_options, refuse_fixed, refuse_moving_socket, socket_moves
from corral.daemon.commands.creation import check_logs_for, held, wait_ready
from corral.errors import OptionError, StateError, shorten
from corral.supervisor import lifecycle
from corral.supervisor.lifecycle import ProcessState
from corral.supervisor.rollout import reload_process
from corral.supervisor.spawn import merge_env

if TYPE_CHECKING:
    from corral.daemon.commands import Commands
    from corral.supervisor.process import ManagedProcess


async def _each(cmds: Commands, target: Any, action: Any) -> list[dict[str, Any]]:
    procs = cmds.select(target)
    await asyncio.gather(*(action(p) for p in procs))
    return cmds.describe_all(procs)


async def cmd_stop(cmds: Commands, target: Any) -> list[dict[str, Any]]:
    async def stop(proc: ManagedProcess) -> None:
        async with cmds.daemon.lock(proc):
            await proc.slot.stop_process(manually=True)

    procs = cmds.select(target)
    # a plugin may order the stop in waves (the depends plugin: dependents first)
    waves = cmds.daemon.manager.call("corral_stop_order", daemon=cmds.daemon.api, apps=procs)
    for wave in _waves_of(waves, procs):
        await asyncio.gather(*(stop(p) for p in wave))
    return cmds.describe_all(procs)


def _waves_of(waves: Any, procs: list[ManagedProcess]) -> list[list[ManagedProcess]]:
    """A plugin's waves, if they hold each process once; else one wave of all."""
    if not isinstance(waves, list) or not all(isinstance(w, list) for w in waves):
        return [procs]
    ordered = [p for wave in waves for p in wave]
    if len(ordered) != len(procs) or {id(p) for p in ordered} != {id(p) for p in procs}:
        return [procs]
    return waves


async def cmd_restart(
    cmds: Commands,
    target: Any,
    update_env: bool = False,
    env: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    procs = cmds.select(target)
    changes = plan_changes(cmds, procs, options)
    moves = socket_moves(cmds.daemon, changes, procs)

    async def restart(proc: ManagedProcess) -> None:
        move = moves.get(proc.name)
        try:
            async with cmds.daemon.lock(proc):
                was_running = proc.state in lifecycle.RUNNING_STATES
                new_options = changed_options(cmds.daemon, proc, changes)  # before the stop
                await proc.slot.stop_process(manually=True)
                proc.options = new_options  # replaced, never changed in place
                if update_env:
                    proc.env = merge_env(dict(env or os.environ), proc.options.get("env"))
                if move is not None:
                    move.arrive(proc)
                    await move.all_stopped.wait()  # the old socket is closed now
                if was_running or not held(cmds, proc):  # a stopped app may wait its turn
                    proc.slot.respawn()
        finally:
            if move is not None:
                move.arrive(proc)  # a failed instance holds no other up

    await asyncio.gather(*(restart(p) for p in procs))
    await wait_ready([p for p in procs if p.waits_for_ready])
    return cmds.describe_all(procs)


async def cmd_reload(
    cmds: Commands,
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
    procs = cmds.select(target)
    changes = plan_changes(cmds, procs, options)
    refuse_moving_socket(changes, procs)
    gate = asyncio.Semaphore(parallel)
    failures: list[str] = []

    async def reload(proc: ManagedProcess) -> None:
        async with gate:
            if await reload_one(proc) and (proc.waits_for_ready or proc.gated):
                # restarted: ready (or listen_timeout) before the next instance goes,
                # outside the slot's lock, so a stop need not wait for it
                await wait_ready([proc])

    async def reload_one(proc: ManagedProcess) -> bool:
        """Reload ``proc``; True if it was restarted instead (not a rolling reload)."""
        async with cmds.daemon.lock(proc):
            if failures:
                return False
            before = (dict(proc.options), dict(proc.env))
            # replaced, never changed in place
            proc.options = changed_options(cmds.daemon, proc, changes)
            if update_env:
                layer = None if env_is_final else proc.options.get("env")
                proc.env = merge_env(dict(env or os.environ), layer)
            rolling = proc.cluster or proc.shares_socket
            if not rolling or proc.state is not ProcessState.ONLINE:
                await proc.slot.stop_process(manually=True)
                proc.slot.respawn()
                return True
            try:
                await reload_process(cmds.daemon, proc, graceful=graceful)
            except StateError as exc:
                proc.options, proc.env = before  # the old version keeps serving
                failures.append(str(exc))
            return False

    await asyncio.gather(*(reload(p) for p in procs))
    if failures:
        raise StateError("; ".join(failures))
    return cmds.describe_all(procs)


async def cmd_delete(cmds: Commands, target: Any) -> list[dict[str, Any]]:
    procs = cmds.select(target)

    async def delete(proc: ManagedProcess) -> None:
        async with cmds.daemon.lock(proc):
            await proc.slot.stop_process(manually=True)
            cmds.daemon.emit(proc, "delete", manually=True)
            cmds.daemon.forget(proc)

    await asyncio.gather(*(delete(p) for p in procs))
    return [p.to_dict() for p in procs]


def plan_changes(
    cmds: Commands, procs: list[ManagedProcess], options: dict[str, Any] | None
) -> dict[str, Any]:
    """The validated ``options`` of a restart or reload of ``procs``, checked for each
    of them (as start checks, then by the plugins) before any is touched."""
    if not options:
        return {}
    changes, warnings = cmds.daemon.schema.normalize_update(options)
    refuse_fixed(changes, procs)
    for proc in procs:
        after = changed_options(cmds.daemon, proc, changes)
        cmds.daemon.manager.validate_app(after, proc.interpreter)
        check_logs_for(cmds, proc, after)
    for warning in warnings:
        cmds.daemon.log.warning("option warning", warning=warning)
    return changes


__all__ = ["cmd_delete", "cmd_reload", "cmd_restart", "cmd_stop", "plan_changes"]
