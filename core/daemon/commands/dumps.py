"""The commands that save and bring back the process list: ``dump`` and ``resurrect``.

:func:`saved_entry` is what a dump and the state file keep of a process, and
:func:`restore` brings such entries back (``resurrect``, and a new daemon's recovery
and update handover, which keep the pm_ids).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral import paths
from corral.daemon import limits, state
from corral.daemon.commands.creation import create, held, launch, prepare
from corral.errors import OptionError, StateError
from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.commands import Commands
    from corral.supervisor.process import ManagedProcess


def saved_entry(proc: ManagedProcess) -> dict[str, Any]:
    """What a dump (and the state file) keeps of a process."""
    entry = {
        "name": proc.name,
        "options": proc.options,
        "env": proc.env,
        "instance": proc.instance,
        "status": proc.state.value,
        "unique_id": proc.unique_id,
        "config_file": proc.config_file,
    }
    if proc.held_by:  # stopped only until a plugin's condition holds: restore asks again
        entry["held"] = proc.held_by
    return entry


def save_dump(cmds: Commands, force: bool) -> dict[str, Any]:
    entries = [saved_entry(p) for p in sorted(cmds.procs.values(), key=lambda p: p.pm_id)]
    if not entries and not force:
        raise StateError(
            "the process list is empty, so nothing was dumped: "
            "pass force=True (--force) to save an empty list"
        )
    path = paths.dump_file(cmds.daemon.home)
    aside = state.save_dump(path, entries)
    if aside is None:
        return {"path": str(path), "count": len(entries)}
    warning = f"the dump {path} did not read: moved it to {aside} (the .bak is kept)"
    cmds.daemon.log.warning("broken dump moved aside", path=str(path), to=str(aside))
    return {"path": str(path), "count": len(entries), "warnings": [warning]}


def cmd_dump(cmds: Commands, force: bool = False) -> dict[str, Any]:
    return save_dump(cmds, force)


async def cmd_resurrect(cmds: Commands) -> dict[str, Any]:
    dump = state.load_dump(paths.dump_file(cmds.daemon.home))
    warnings = [dump.warning] if dump.warning else []
    for warning in warnings:
        cmds.daemon.log.warning("resurrect from the backup", warning=warning)
    running = {p.name for p in cmds.procs.values()}
    restored = await restore(cmds, [e for e in dump.apps if e.get("name") not in running])
    reply = {"processes": cmds.describe_all(restored), "warnings": warnings}
    return {**reply, "actions": _reused(cmds, {e.get("name") for e in dump.apps} & running)}


def _reused(cmds: Commands, names: set[str]) -> list[dict[str, Any]]:
    """The apps a resurrect left as they run (corral.client.actions: ``reused``)."""
    reused = []
    for name in sorted(names):
        procs = sorted((p for p in cmds.procs.values() if p.name == name), key=lambda p: p.pm_id)
        statuses = [p.state.value for p in procs]
        status = statuses[0] if len(set(statuses)) == 1 else "mixed"
        ids = [p.pm_id for p in procs]
        reused.append({"name": name, "action": "reused", "pm_ids": ids, "status": status})
    return reused


async def restore(
    cmds: Commands, entries: list[dict[str, Any]], *, keep_ids: bool = False
) -> list[ManagedProcess]:
    """Bring back saved processes; an entry that no longer validates is logged and skipped."""
    restored = []
    try:  # room for all: no app is checked alone (each check lists the daemon's fds)
        limits.check_room(len(entries), field="apps")
        each = False
    except OptionError as exc:  # then each app that fits comes back, and the rest are told
        cmds.daemon.log.error("cannot restore every app", error=str(exc))
        each = True
    for entry in entries:
        try:
            options = dict(entry["options"])
            cwd = options.get("cwd") or "/"
            env = dict(entry.get("env") or {})
            app = prepare(cmds, options, cwd, env, None, check_fds=each)
            app.env = dict(entry.get("env") or app.env)
            pm_id = (
                entry.get("pm_id") if keep_ids and entry.get("pm_id") not in cmds.procs else None
            )
            proc = create(cmds, app, int(entry.get("instance") or 0), pm_id)
            proc.config_file = entry.get("config_file")
        except Exception as exc:
            cmds.daemon.log.error("cannot restore app", name=entry.get("name"), error=str(exc))
            continue
        if keep_ids and entry.get("history"):
            proc.history = lifecycle.RestartHistory(**entry["history"])
        restored.append(proc)
        status = entry.get("status")
        if status == "stopped" and not entry.get("held"):
            continue  # stopped by a user; a held app's plugin is asked again
        if keep_ids and status == "errored":
            continue
        try:
            if keep_ids and status != "stopped":  # it ran under the daemon before
                proc.slot.spawn(is_restart=True)
            elif not held(cmds, proc):
                launch(proc)
        except Exception as exc:
            cmds.daemon.log.error("cannot restart restored app", name=proc.name, error=str(exc))
    return restored


__all__ = ["cmd_dump", "cmd_resurrect", "restore", "save_dump", "saved_entry"]
