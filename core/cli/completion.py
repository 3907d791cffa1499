"""Shell completion: ``corral completion bash|zsh|fish`` prints click's script for the
shell, and the arguments that name apps complete from a running daemon.

The script calls ``corral`` back with ``_CORRAL_COMPLETE=<shell>_complete`` (click's
machinery); command names and flags come from click. A target argument (the
``target``/``targets``/``name`` of stop, restart, logs, describe, env, id, ...)
completes to the names and pm_ids of the apps of a daemon that already runs,
asked once with a short timeout through :mod:`corral.rpc.fast`: completion never
starts a daemon, and with none running it offers no app (files still complete
where a command takes one).
"""

from __future__ import annotations

import json
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from corral.errors import OptionError

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_CORRAL_COMPLETE"
TARGET_PARAMS = ("target", "targets", "name", "pm_id")
ASK_TIMEOUT = 1.0  # seconds: a stalled daemon must not freeze the shell


def source(cli: click.Command, shell: str) -> str:
    """The completion script of ``shell`` for ``corral``."""
    cls = get_completion_class(shell)
    if cls is None or shell not in SHELLS:
        raise OptionError(f"completion is for {', '.join(SHELLS)}, got {shell!r}", field="shell")
    return cls(cli, {}, "corral", COMPLETE_VAR).source()


def running_apps() -> list[dict[str, Any]]:
    """The processes of a daemon that already runs in this home ([] when none answers)."""
    from corral.rpc import fast  # deferred: the socket client, only when the shell asks

    found = fast.result(fast.call(b"list", timeout=ASK_TIMEOUT))
    if found is None:
        return []
    try:
        procs = json.loads(found)
    except ValueError:
        return []
    return [p for p in procs if isinstance(p, dict)]


def complete_targets(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """App names, then pm_ids, that start with ``incomplete``; 'all' for commands of many."""
    words: dict[str, str] = {}
    for proc in running_apps():
        name, pm_id = proc.get("name"), proc.get("pm_id")
        if isinstance(name, str):
            words.setdefault(name, "app")
        if isinstance(pm_id, int):
            words.setdefault(str(pm_id), f"id of {name}")
    if words and param.name == "targets":
        words.setdefault("all", "every app")
    items = [CompletionItem(w, help=h) for w, h in words.items() if w.startswith(incomplete)]
    if not items and param.name == "targets":  # a script or config file to start
        return [CompletionItem(incomplete, type="file")]
    return items


def attach(group: click.Group) -> None:
    """Give every target argument of ``group``'s commands (and subgroups) the app
    completion, where it has no completion of its own."""
    for command in list(group.commands.values()):
        for param in command.params:
            if (
                isinstance(param, click.Argument)
                and param.name in TARGET_PARAMS
                and getattr(param, "_custom_shell_complete", None) is None
            ):
                param._custom_shell_complete = complete_targets
        if isinstance(command, click.Group):
            attach(command)


def hook(group: click.Group) -> None:
    """Attach the app completion when click starts completing, so commands added after
    this call (other modules, plugins) get it too."""
    original = group._main_shell_completion

    def complete(*args: Any, **kwargs: Any) -> None:
        import os

        if os.environ.get(COMPLETE_VAR):
            attach(group)
        original(*args, **kwargs)

    group._main_shell_completion = complete  # type: ignore[method-assign]
