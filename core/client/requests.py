"""A client call's request, built from its arguments, and its reply, read (both clients').

Paths and config files are resolved here, in the caller's cwd; the replies become
``ProcessInfo`` lists (``corral.client.actions.Applied`` for start, restart and resurrect)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from corral.client.info import ProcessInfo
from corral.errors import CorralError, CorralWarning, NotFoundError


def _infos(result: Any) -> list[ProcessInfo]:
    return [ProcessInfo(item) for item in result]


def _resurrected(result: Any) -> list[ProcessInfo]:
    """resurrect's reply: ``{"processes", "warnings"}`` (a list from an older daemon)."""
    if isinstance(result, list):
        return _infos(result)
    # deferred: corral.client.actions, off connect()+list()'s import path
    from corral.client.actions import Applied, summarize

    for message in result.get("warnings", ()):
        warnings.warn(message, CorralWarning, stacklevel=4)  # the caller of resurrect()
    infos = _infos(result["processes"])
    return Applied(infos, summarize("resurrect", infos, result.get("actions")))


def _started(result: dict[str, Any]) -> list[ProcessInfo]:
    """start's reply: its processes, with ``actions`` (corral.client.actions.Applied)."""
    # deferred: corral.client.actions, off connect()+list()'s import path
    from corral.client.actions import Applied, from_steps, summarize

    for message in result.get("warnings", ()):
        warnings.warn(message, CorralWarning, stacklevel=4)
    infos = _infos(result["processes"])
    if "plan" in result:  # a config file's reconcile: its steps say it
        return Applied(infos, from_steps(result["plan"], infos))
    return Applied(infos, summarize("start", infos, result.get("actions")))


def _restarted(infos: list[ProcessInfo]) -> list[ProcessInfo]:
    """A start by name or id: the app was restarted, as PM2's start of a known app."""
    # deferred: corral.client.actions, off connect()+list()'s import path
    from corral.client.actions import Applied, summarize

    return Applied(infos, summarize("restart", infos))


def _target(target: Any, remote: bool = False) -> Any:
    """``target`` as the daemon matches it: paths and config files resolved here, in the
    caller's cwd (see corral.client.targets)."""
    from corral.client.targets import (
        resolve,  # deferred: corral.client.targets, off connect()+list()'s import path
    )

    return resolve(target, remote=remote)


def _change(
    target: Any, update_env: bool, options: dict[str, Any] | None, remote: bool = False
) -> dict[str, Any]:
    """The arguments restart and reload share: the target, the caller's env, new options."""
    args: dict[str, Any] = {"target": _target(target, remote), "update_env": update_env}
    if update_env:
        args["env"] = dict(os.environ)
    if options:
        args["options"] = options
    return args


def start_request(
    target: Any, options: dict[str, Any] | str | os.PathLike | None, env_name: str | None
) -> dict[str, Any] | None:
    """The ``start`` request for a script, a config file, an options dict or a list of them.

    Returns None when ``target`` may be the name or pm_id of an existing app.
    """
    # deferred: the config loader, only for a config target
    from corral.options.config import is_config_file, load_config

    extra: dict[str, Any] = {}
    if isinstance(options, (str, os.PathLike)):
        loaded = load_config(options)
        extra = dict(loaded[0]) if loaded else {}
    elif options:
        extra = dict(options)
    from_config = False
    config_file = None
    if isinstance(target, dict):
        apps = [{**target, **extra}]
    elif isinstance(target, (list, tuple)):
        apps = [{**dict(app), **extra} for app in target]
    elif isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if is_config_file(text):
            apps = [{**app, **extra} for app in load_config(text)]
            from_config = True
            config_file = os.path.abspath(text)
        elif _looks_like_script(text):
            apps = [{"script": text, **extra}]
        else:
            return None
    elif isinstance(target, int):
        return None
    else:
        raise CorralError(
            f"start needs a script, a config file or options, got {type(target).__name__}"
        )
    request = {
        "apps": apps,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "env_name": env_name,
        "from_config": from_config,
    }
    if config_file is not None:
        request["config_file"] = config_file
    return request


def _renames(target: Any, options: Any) -> bool:
    """Whether a start of the bare word ``target`` gives it another name (``start npm
    --name web``): then it is a command to start, never the app called ``target``."""
    if not isinstance(target, str) or not isinstance(options, dict):
        return False
    name = options.get("name")
    return isinstance(name, str) and bool(name) and name != target


def reconcile_request(
    target: Any,
    options: dict[str, Any] | str | os.PathLike | None,
    *,
    env_name: str | None,
    action: str,
    prune: bool = False,
    dry_run: bool = False,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """The ``start`` request that brings a config file's apps (or a list of app dicts)
    in line with it (corral.daemon.commands.reconcile); with ``only``, just the apps it names, and
    the file's other apps are left alone (``prune`` too leaves them)."""
    # deferred: corral.client.targets, off connect()+list()'s import path
    from corral.client.targets import is_config_target, pick_apps

    if is_config_target(target):
        config_file: str | None = os.path.abspath(os.fspath(target))
    elif isinstance(target, (dict, list, tuple)):
        config_file = None
    elif _missing_config(target):
        raise NotFoundError(
            f"config file {os.fspath(target)!r} not found in {os.getcwd()}: check its path"
        )
    else:
        raise CorralError(
            f"{action.replace('_', ' ')} of {target!r} needs a config file "
            "(ecosystem.config.js, *.json, *.yaml, *.toml) or a list of apps: "
            "restart an app by name with restart()"
        )
    request = start_request(target, options, env_name)
    assert request is not None
    request.update(
        from_config=True, action=action, config_file=config_file, prune=prune, dry_run=dry_run
    )
    if only:
        source = os.fspath(target) if config_file else "the config"
        request.update(apps=pick_apps(request["apps"], only, source), only=True)
    return request


def _reconciled(result: dict[str, Any]) -> Any:
    from corral.daemon.commands.reconcile import (
        Reconciled,  # deferred: corral.daemon.commands.reconcile, only for a config's start
    )

    return Reconciled(
        result.get("plan", []),
        result.get("lines", []),
        _started(result),
        bool(result.get("dry_run")),
    )


def _missing_config(target: Any) -> bool:
    """Whether ``target`` names a config file (by its suffix) that is not there."""
    from corral.options.config import (
        CONFIG_SUFFIXES,  # deferred: the config loader, only for a config target
    )

    if not isinstance(target, (str, os.PathLike)):
        return False
    path = os.fspath(target)
    return Path(path).suffix.lower() in CONFIG_SUFFIXES and not os.path.exists(path)


def _is_file(target: Any) -> bool:
    # deferred: corral.client.targets, off connect()+list()'s import path
    from corral.client.targets import is_config_target

    return is_config_target(target)


def _new_options(options: Any) -> dict[str, Any] | None:
    """The options a start of an existing app restarts it with (PM2 applies them too)."""
    return dict(options) if isinstance(options, dict) and options else None


def _looks_like_script(text: str) -> bool:
    return os.path.exists(text) or "/" in text or " " in text or "." in Path(text).name
