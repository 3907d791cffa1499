"""``startup()`` and ``unstartup()``: the two commands, as ``pm2 startup`` runs them.

Everything runs in the client process, where the user typed the command; the
daemon is only asked to dump its list. Not root (and the script goes in a
system directory), or ``print_only``: nothing is written; the result carries
the text and the one command to run as root, as PM2 prints it.
"""

from __future__ import annotations

import os
import pwd
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral import OptionError, StateError, api

from .context import StartupContext, StartupResult, current_user
from .install import install, render, run_command, sudo_command, uninstall
from .platforms import resolve_platform

if TYPE_CHECKING:
    from corral import Client

# -- the process list -----------------------------------------------------------


def save_list(context: StartupContext, client: Client | None = None) -> str:
    """Dump the list of the daemon serving ``context.home``, if it runs and is ours.

    Never starts a daemon. Returns a line saying what happened; an empty list is
    not saved (the dump from before, if any, is kept), as PM2's ``save`` does.
    """
    dump = api.dump_file(context.home)
    kept = f" ({dump} from before is kept: boot brings it back)" if dump.exists() else ""
    own = None
    if client is None or Path(getattr(client, "home", "")) != context.home:
        client = own = api.running_client(context.home)
    if client is None:
        if context.user != current_user():
            return f"run `corral dump` as {context.user} once the apps run, for boot to start them"
        return (
            f"no daemon runs in {context.home}, so no list was saved{kept}: "
            "start your apps, then `corral dump`"
        )
    try:
        saved = client.dump()
    except StateError:
        return (
            f"the process list is empty, so nothing was saved{kept}: "
            "start your apps, then `corral dump`"
        )
    finally:
        if own is not None:
            own.disconnect()
    return (
        f"saved {saved['count']} apps to {saved['path']}: boot starts them with `corral resurrect`"
    )


# -- the two commands -----------------------------------------------------------


def startup(
    platform: str | None = None,
    *,
    user: str | None = None,
    hp: str | os.PathLike | None = None,
    service_name: str | None = None,
    user_mode: bool = False,
    print_only: bool = False,
    client: Client | None = None,
    manager: Any = None,
    run: Callable[[list[str]], Any] = run_command,
    root: Path | None = None,
    is_root: bool | None = None,
) -> StartupResult:
    """Generate the boot script and install it, or say who must run what to do so.

    ``root``, ``run`` and ``is_root`` are for tests: a directory standing for ``/``,
    the command runner, and whether to act as root.
    """
    result = _prepare(platform, user, hp, service_name, user_mode, manager)
    script, context = result.script, result.context
    is_root = os.geteuid() == 0 if is_root is None else is_root
    if print_only or (script.needs_root and not is_root):
        _leave_todo(result, "startup")
        if not print_only:
            result.notes.append(save_list(context, client))
        return result
    # a user-level file root writes for someone else: theirs, and so are its commands
    for_other = not _may_act(result, is_root)
    owner = _ids_of(context.user) if for_other and is_root else None
    result.written = install(script, root=root, run=run, owner=owner, enable=not for_other)
    if for_other:
        result.todo = " && ".join(shlex.join(argv) for argv in script.enable) or None
        result.todo_as = context.user
    else:
        result.ran = list(script.enable)
    result.notes.append(save_list(context, client))
    return result


def unstartup(
    platform: str | None = None,
    *,
    user: str | None = None,
    hp: str | os.PathLike | None = None,
    service_name: str | None = None,
    user_mode: bool = False,
    print_only: bool = False,
    manager: Any = None,
    run: Callable[[list[str]], Any] = run_command,
    root: Path | None = None,
    is_root: bool | None = None,
) -> StartupResult:
    """Disable the service and delete its file (the same arguments as :func:`startup`).

    A user-level file of someone else is left for them to remove, with the command.
    """
    result = _prepare(platform, user, hp, service_name, user_mode, manager)
    is_root = os.geteuid() == 0 if is_root is None else is_root
    if print_only or not _may_act(result, is_root):
        _leave_todo(result, "unstartup")
        return result
    result.written, warnings = uninstall(result.script, root=root, run=run)
    result.notes.extend(warnings)
    result.ran = list(result.script.disable)
    return result


def _may_act(result: StartupResult, is_root: bool) -> bool:
    """Root for a system file; the user for a user-level one."""
    if result.script.needs_root:
        return is_root
    return result.context.user == current_user()


def _prepare(
    platform: str | None,
    user: str | None,
    hp: str | os.PathLike | None,
    service_name: str | None,
    user_mode: bool,
    manager: Any,
) -> StartupResult:
    init_system, notes = resolve_platform(platform)
    if user_mode and init_system != "systemd":
        raise OptionError(
            f"a user-level unit (--user without a name) is a systemd feature, not {init_system}'s: "
            "drop --user, or pick systemd",
            field="user_mode",
        )
    context = StartupContext.build(user=user, hp=hp, service_name=service_name, user_mode=user_mode)
    script = render(init_system, context, manager)
    return StartupResult(
        platform=platform or init_system,
        context=context,
        script=script,
        notes=[*notes, *script.notes],
    )


def _leave_todo(result: StartupResult, verb: str) -> None:
    """``--print``: the one command that installs what was printed."""
    if result.script.needs_root:
        result.todo = sudo_command(verb, result.platform, result.context)
        result.todo_as = "root"
    else:
        words = [result.context.corral_bin, verb, result.platform]
        if result.context.user_mode:
            words.append("--user-mode")
        if result.context.service_name:
            words += ["--service-name", result.context.service_name]
        result.todo, result.todo_as = shlex.join(words), result.context.user


def _ids_of(user: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def report(result: StartupResult, verb: str = "startup") -> list[str]:
    """The lines ``corral startup`` prints after the file itself; the command to run is last."""
    script = result.script
    lines = [f"platform: {result.platform} ({script.init_system})"]
    if verb == "startup":
        where = f"wrote {result.written}" if result.written else f"destination: {script.path}"
    else:
        where = f"deleted {result.written}" if result.written else f"file: {script.path}"
    lines.append(where)
    lines += [f"ran: {shlex.join(argv)}" for argv in result.ran]
    lines += [f"note: {note}" for note in result.notes if note]
    if result.todo:
        goal = "remove" if verb == "unstartup" else "enable" if result.written else "install"
        lines.append(f"to {goal} it, run as {result.todo_as}:")
        lines.append(result.todo)
    elif verb == "startup":
        lines.append(f"remove it with: corral unstartup {result.platform}")
    return lines
