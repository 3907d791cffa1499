"""The commands that start apps: ``start`` (a script, a command, a config file's) and ``scale``.

A batch's new apps start all or none; a config file's apps are brought in line with
it by corral.daemon.commands.reconcile, one reconcile at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any

from corral.daemon import limits
from corral.daemon.apps import PreparedApp, check_fd_budget, check_name
from corral.daemon.commands import reconcile
from corral.daemon.commands.creation import (
    check_logs_for,
    create,
    create_all,
    launch,
    launch_all,
    prepare,
    restart_with,
    undo,
    wait_ready,
)
from corral.daemon.pacing import Pacer
from corral.errors import NotFoundError, OptionError, StateError, shorten
from corral.rpc.wire import RawJSON
from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.commands import Commands
    from corral.supervisor.process import ManagedProcess


async def cmd_start(
    cmds: Commands,
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
    cmds.daemon.schema.check_unknown(apps, labels=from_config or len(apps) > 1)
    caller_env = dict(env or os.environ)
    prepared = []
    pacer = Pacer()
    for raw in apps:  # nothing is made yet: other calls may run between two apps
        # the batch's room is checked once, below (corral.daemon.limits.check_start)
        prepared.append(prepare(cmds, raw, cwd, caller_env, env_name, check_fds=False))
        await pacer.turn()
    for app in prepared:
        check_name(app.name)  # here, not in prepare: a dump's old app still comes back
    if not dry_run:  # fds and pids for the whole batch, or none of it starts
        limits.check_start(prepared, cmds.procs.values())
    # the batch as a whole, for the plugins (the depends plugin's graph)
    batch = [{"name": app.name, "options": app.options} for app in prepared]
    cmds.daemon.manager.call_checked("corral_validate_start", daemon=cmds.daemon.api, apps=batch)
    if (
        from_config
    ):  # a config file's apps: brought in line with it (corral.daemon.commands.reconcile)
        async with cmds.reconciling:
            reply = await reconcile.apply(
                cmds,
                prepared,
                action=action,
                config_file=config_file,
                prune=prune,
                dry_run=dry_run,
                only=only,
            )
        reply["warnings"] = [w for app in prepared for w in app.warnings]
        return await encoded(cmds, reply)
    if prune or dry_run:
        raise OptionError("prune and dry_run apply to a config file's apps", field="apps")
    plans = [_plan_start(cmds, app, from_config) for app in prepared]
    # the batch's new apps start all or none: a failure removes every one of them
    made = await create_all(cmds, [app for app, existing in plans if not existing])
    await launch_all(cmds, made, locked=True)
    started: list[ManagedProcess] = []
    fresh = iter(made)
    for app, existing in plans:
        started.extend(existing or [next(fresh) for _ in range(app.count)])
        await asyncio.gather(*(restart_with(cmds, p, app) for p in existing))
    await wait_ready([p for p in started if p.waits_for_ready])
    warnings = [w for app in prepared for w in app.warnings]
    for warning in warnings:
        cmds.daemon.log.warning("option warning", warning=warning)
    # what happened per app (corral.client.actions): the client's lines say it
    actions = [
        {"name": app.name, "action": "restarted" if existing else "started"}
        for app, existing in plans
    ]
    return await encoded(cmds, {"processes": started, "warnings": warnings, "actions": actions})


async def encoded(cmds: Commands, reply: dict[str, Any]) -> RawJSON:
    """The start's reply, its ``processes`` (ManagedProcess) described with fresh figures.

    Encoded as ``list`` does (ManagedProcess.to_json keeps each one's fixed part
    encoded), other calls answered meanwhile: the reply to a start of 1,000 apps
    held the loop 90-130 ms of CPU in describe_all and json, the longest stretch
    of the start once it was paced."""
    procs = reply.pop("processes")
    cmds.sample(procs)  # at once: a sample forgets the pids it was not given (monitor.py)
    head = json.dumps(reply, separators=(",", ":"), default=str)
    pacer, parts = Pacer(), []
    for proc in procs:  # the first to_json of each encodes its env too: 60 ms at 1,000
        parts.append(proc.to_json())
        await pacer.turn()
    described = ",".join(parts)
    return RawJSON(f'{head[:-1]}{"," if reply else ""}"processes":[{described}]}}'.encode())


def _plan_start(cmds: Commands, app: PreparedApp, from_config: bool) -> tuple[PreparedApp, list]:
    existing = sorted((p for p in cmds.procs.values() if p.name == app.name), key=lambda p: p.pm_id)
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
        check_logs_for(cmds, proc, app.options)
    return app, sorted(existing, key=lambda p: p.pm_id)


async def cmd_scale(cmds: Commands, name: str, count: Any) -> list[dict[str, Any]]:
    """Run ``count`` instances of the app ``name``; ``"+2"``/``"-1"`` are relative."""
    procs = sorted((p for p in cmds.procs.values() if p.name == name), key=lambda p: p.pm_id)
    if not procs:
        raise NotFoundError(f"no app named {shorten(name)}; `corral ls` lists them")
    wanted = _scale_target(count, len(procs))
    if wanted > len(procs):
        try:
            check_fd_budget(wanted - len(procs))
        except OptionError as exc:
            raise OptionError(f"scale {shorten(name)} to {wanted}: {exc}", field="count") from None
    for proc in procs[wanted:][::-1]:
        async with cmds.daemon.lock(proc):
            await proc.slot.stop_process(manually=True)
            cmds.daemon.emit(proc, "delete", manually=True)
            cmds.daemon.forget(proc)
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
            added.append(create(cmds, app, next(free)))
        for proc in added:
            launch(proc)
            cmds.daemon.emit(proc, "start", manually=True)
    except Exception:
        await undo(cmds, added)
        raise
    await wait_ready([p for p in added if p.waits_for_ready])
    return cmds.describe_all(
        sorted((p for p in cmds.procs.values() if p.name == name), key=lambda p: p.pm_id)
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


__all__ = ["cmd_scale", "cmd_start"]
