"""Bring the apps of a config file in line with it, as supervisord's ``update`` does.

``corral start ecosystem.json`` (``startOrRestart``, ``startOrReload``,
``startOrGracefulReload``, and ``restart``/``reload`` of a config file) compares
each app of the file with the app of that name the daemon runs, and plans one
step per app:

- ``start``: no app of that name: it starts;
- ``replace``: its script or interpreter changed, or an option fixed at creation
  (``exec_mode``, log or pid files): the old app is deleted, the new one started;
- ``scale``: ``instances`` changed: it is rescaled, the kept instances restarted
  (or reloaded) with the file's options;
- ``change``: other options changed: restarted (or reloaded) with them;
- ``unchanged``: restarted (or reloaded) all the same, as PM2 does;
- ``delete`` / ``keep``: an app started from this file that the file no longer
  lists is deleted with ``prune``, else left alone (apps started otherwise are
  never touched).

:func:`plan` is pure (the file's prepared apps and the current apps in, steps
out); :func:`apply` runs the steps in the daemon. A dry run returns the plan
and does nothing. An app without a ``name`` is known by its script: one whose
derived name is taken by an app running another script is refused
(:func:`identity_conflict`), and nothing changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from corral.daemon.changes import FIXED
from corral.daemon.commands import creation as cmd_creation
from corral.errors import OptionError, StateError, shorten

if TYPE_CHECKING:
    from corral.client.info import ProcessInfo
    from corral.daemon.apps import PreparedApp
    from corral.daemon.commands import Commands
    from corral.supervisor.process import ManagedProcess

ACTIONS = {"restart": "restarted", "reload": "reloaded", "graceful_reload": "reloaded"}
# fixed at creation (corral.daemon.changes.FIXED), so a change means a new app; instances scale
_REPLACING = tuple(k for k in FIXED if k not in ("instances", "name", "script"))
_NOT_COMPARED = ("instances", "name")


@dataclass(frozen=True)
class Current:
    """What the daemon runs under one name (its first instance's settings)."""

    name: str
    options: dict[str, Any]
    script: str
    interpreter: str
    is_command: bool
    count: int
    config_file: str | None = None

    @classmethod
    def of(cls, procs: list[ManagedProcess]) -> Current:
        first = min(procs, key=lambda p: p.pm_id)
        return cls(
            first.name,
            dict(first.options),
            first.script,
            first.interpreter,
            first.is_command,
            len(procs),
            getattr(first, "config_file", None),
        )


@dataclass
class Step:
    """One app's part of a plan; :meth:`line` says it in one line."""

    name: str
    kind: str  # start, replace, scale, change, unchanged, delete, keep
    before: int = 0  # instances now
    after: int = 0  # instances once done
    changed: list[str] = field(default_factory=list)
    old_script: str = ""
    new_script: str = ""

    def line(self, action: str = "restart", source: str = "the file") -> str:
        done = ACTIONS.get(action, "restarted")
        if action == "graceful_reload":
            done = "gracefully reloaded"
        changed = f" (changed: {', '.join(self.changed)})" if self.changed else ""
        plural = "s" if self.after != 1 else ""
        what = {
            "start": f"started ({self.after} instance{plural})",
            "replace": (
                f"replaced ({self.old_script} -> {self.new_script})"
                if self.old_script != self.new_script
                else f"replaced{changed}"
            ),
            "scale": f"scaled {self.before}->{self.after}, {done}{changed}",
            "change": f"{done}{changed}",
            "unchanged": f"unchanged-{done}",
            "delete": f"deleted (no longer in {source})",
            "keep": f"left alone (no longer in {source}; --prune deletes it)",
        }[self.kind]
        return f"{self.name}: {what}"


def identity_conflict(app: PreparedApp, procs: list[ManagedProcess]) -> str | None:
    """Why starting ``app`` must not touch ``procs`` (the apps of its name), or None.

    An app given no name is known by its script: an app of that derived name
    running (or stopped with) another script is another app.
    """
    if app.named or not procs:
        return None
    other = procs[0]
    if other.script == app.script and other.is_command == app.is_command:
        return None
    return (
        f"an app named '{app.name}' already exists with script {shorten(other.script)}, "
        f"so {shorten(app.script)} was not started and '{app.name}' was left as it is: "
        f"give the new app its own name (--name, or 'name' in a config file)"
    )


def plan(
    desired: list[PreparedApp],
    current: list[Current],
    *,
    config_file: str | None = None,
    prune: bool = False,
    only: bool = False,
) -> list[Step]:
    """The steps that bring ``current`` in line with ``desired`` (no side effects).

    ``only``: ``desired`` is the part of the file chosen by ``--only``; the file's
    other apps are left out of the plan (``prune`` never deletes them).

    Raises OptionError when two apps of the file share a name.
    """
    by_name = {c.name: c for c in current}
    seen: set[str] = set()
    steps: list[Step] = []
    for app in desired:
        if app.name in seen:
            raise OptionError(
                f"two apps are named {shorten(app.name)}: a name is an app's identity; "
                "give each app its own 'name'",
                field="name",
            )
        seen.add(app.name)
        now = by_name.get(app.name)
        if now is None or app.options.get("force"):  # force: another copy, as start does
            steps.append(Step(app.name, "start", 0, app.count, new_script=app.script))
            continue
        # merge_logs follows the count unless given; a rescale keeps the app's log files
        fixed = [k for k in _REPLACING if k != "merge_logs" or app.count == now.count]
        replacing = [k for k in fixed if app.options.get(k) != now.options.get(k)]
        if (app.script, app.is_command) != (now.script, now.is_command):
            replacing.insert(0, "script")
        elif app.interpreter != now.interpreter and "exec_interpreter" not in replacing:
            replacing.insert(0, "exec_interpreter")
        if replacing:
            steps.append(
                Step(app.name, "replace", now.count, app.count, replacing, now.script, app.script)
            )
            continue
        keys = sorted((set(app.options) | set(now.options)) - {*_NOT_COMPARED, *_REPLACING})
        changed = [k for k in keys if app.options.get(k) != now.options.get(k)]
        kind = "scale" if app.count != now.count else "change" if changed else "unchanged"
        steps.append(Step(app.name, kind, now.count, app.count, changed))
    if config_file is not None and not only:
        for now in current:
            if now.name not in seen and now.config_file == config_file:
                kind = "delete" if prune else "keep"
                steps.append(Step(now.name, kind, now.count, 0 if prune else now.count))
    return steps


@dataclass
class Reconciled:
    """What a client gets back: the plan's steps and lines, and the apps' processes."""

    steps: list[dict[str, Any]]
    lines: list[str]
    processes: list[ProcessInfo]
    dry_run: bool = False


async def apply(
    cmds: Commands,
    apps: list[PreparedApp],
    *,
    action: str = "restart",
    config_file: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
    only: bool = False,
) -> dict[str, Any]:
    """Plan, check, then run the steps; the start reply with ``plan`` and ``lines``."""
    if action not in ACTIONS:
        known = ", ".join(ACTIONS)
        raise OptionError(f"action must be one of {known}, got {shorten(action)}", field="action")
    for field_name, value in (("prune", prune), ("dry_run", dry_run), ("only", only)):
        if not isinstance(value, bool):
            message = f"{field_name} must be true or false, got {shorten(value)}"
            raise OptionError(message, field=field_name)
    if config_file is not None and not isinstance(config_file, str):
        raise OptionError(
            f"config_file must be the file's absolute path, got {shorten(config_file)}",
            field="config_file",
        )
    groups: dict[str, list[ManagedProcess]] = {}
    for proc in sorted(cmds.procs.values(), key=lambda p: p.pm_id):
        groups.setdefault(proc.name, []).append(proc)
    for app in apps:
        conflict = identity_conflict(app, groups.get(app.name, []))
        if conflict:
            raise StateError(conflict)
    current = [Current.of(g) for g in groups.values()]
    steps = plan(apps, current, config_file=config_file, prune=prune, only=only)
    source = config_file or "the file"
    reply: dict[str, Any] = {
        "plan": [asdict(s) for s in steps],
        "lines": [s.line(action, source) for s in steps],
        "dry_run": dry_run,
    }
    by_name = {app.name: app for app in apps}
    for step in steps:  # every check before the first change
        if step.kind in ("scale", "change", "unchanged"):
            for proc in groups[step.name]:
                cmd_creation.check_logs_for(cmds, proc, by_name[step.name].options)
    if dry_run:
        names = set(by_name) | {s.name for s in steps}
        chosen = [p for n, g in groups.items() if n in names for p in g]
        reply["processes"] = chosen  # described by the caller (launch.encoded)
        return reply
    # the new apps are made (log files opened) before a replaced one goes: all or none
    fresh = [by_name[s.name] for s in steps if s.kind in ("start", "replace")]
    started = await cmd_creation.create_all(cmds, fresh)
    doomed = [p for s in steps if s.kind in ("replace", "delete") for p in groups[s.name]]
    if doomed:
        try:
            await cmds.cmd_delete([p.pm_id for p in doomed])
        except BaseException:  # the new ones stay registered, unlaunched: saved as stopped
            cmd_creation.release_all(cmds, started)
            raise
    await cmd_creation.launch_all(cmds, started, locked=True)
    await asyncio.gather(
        *(
            _update(cmds, by_name[s.name], groups[s.name], s, action)
            for s in steps
            if s.kind in ("scale", "change", "unchanged")
        )
    )
    procs = sorted((p for p in cmds.procs.values() if p.name in by_name), key=lambda p: p.pm_id)
    for proc in procs:
        proc.config_file = config_file
    await cmd_creation.wait_ready([p for p in started if p.options.get("wait_ready")])
    reply["processes"] = procs  # described by the caller (launch.encoded)
    return reply


async def _update(
    cmds: Commands, app: PreparedApp, procs: list[ManagedProcess], step: Step, action: str
) -> None:
    """Restart or reload an app with the file's options, rescaled to the file's count."""
    # the log files were opened for the app's merge_logs; a rescale keeps them
    app.options["merge_logs"] = procs[0].options.get("merge_logs")
    if step.after < step.before:
        await cmds.cmd_scale(app.name, step.after)
        procs = procs[: step.after]
    if action == "restart":
        await asyncio.gather(*(cmd_creation.restart_with(cmds, p, app) for p in procs))
    else:
        changes = {k: app.options.get(k) for k in step.changed}
        await cmds.cmd_reload(
            [p.pm_id for p in procs],
            update_env=True,
            env=dict(app.env),
            graceful=action == "graceful_reload",
            options=changes or None,
            env_is_final=True,  # env_<name> of the file's --env stays over its env
        )
    if step.after > step.before:
        await cmds.cmd_scale(app.name, step.after)


__all__ = ["ACTIONS", "Current", "Reconciled", "Step", "apply", "identity_conflict", "plan"]
