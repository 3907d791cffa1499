"""Matching the targets a client resolved (:mod:`corral.client.targets`) to the daemon's processes.

``{"given": "./app.py", "path": "/abs/app.py"}`` is a path the caller typed: a
name first (an app may be called ``app.py``), then the script at that path,
then a namespace. ``{"file": "/abs/ecosystem.json", "names": [...]}`` is a
config file: the processes of those of its apps that exist here (PM2 skips
the others too); none at all is a NotFoundError naming the file's apps.
``/echo-[12]/`` (a target that starts and ends with ``/``) is a regular
expression searched in each app's name, as PM2's ``_operate``.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

from corral.errors import NotFoundError, OptionError, shorten

if TYPE_CHECKING:
    from corral.supervisor.process import ManagedProcess


def same_script(proc: ManagedProcess, path: str) -> bool:
    """Whether ``proc`` runs the script at the absolute ``path`` (``..`` and links resolved)."""
    if proc.is_command:
        return False
    if os.path.normpath(proc.script) == os.path.normpath(path):
        return True
    return os.path.realpath(proc.script) == os.path.realpath(path)


REGEX_MAX = 200  # characters of a /regex/ target: a longer one is refused, not compiled


def is_regex_target(target: Any) -> bool:
    """Whether ``target`` is written as ``/regex/`` (PM2: a name between slashes)."""
    return isinstance(target, str) and len(target) > 2 and target[0] == target[-1] == "/"


def select_regex(procs: list[ManagedProcess], target: str) -> list[ManagedProcess]:
    """The processes (sorted as ``procs``) whose name the ``/regex/`` ``target`` finds."""
    pattern = target[1:-1]
    if len(pattern) > REGEX_MAX:
        raise OptionError(
            f"the regex target {shorten(target)} is {len(pattern)} characters long, over "
            f"{REGEX_MAX}: give a shorter pattern",
            field="target",
        )
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise OptionError(
            f"the regex target {shorten(target)} does not compile ({exc}): fix the pattern "
            "(Python re syntax), or give a name without the surrounding slashes",
            field="target",
        ) from None
    matches = [p for p in procs if regex.search(p.name)]
    if not matches:
        known = ", ".join(sorted({shorten(p.name) for p in procs})[:10]) or "none"
        raise NotFoundError(
            f"no process name matches the regex {shorten(target)} (names: {known}); "
            "`corral ls` lists them"
        )
    return matches


def select_resolved(procs: list[ManagedProcess], target: dict[str, Any]) -> list[ManagedProcess]:
    """The processes (sorted as ``procs``) a resolved path or config file target names."""
    if "file" in target:
        names = target.get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise OptionError(
                f"a config file target carries the names of its apps, got {shorten(target)}",
                field="target",
            )
        matches = [p for p in procs if p.name in names]
        if not matches:
            given = str(target.get("given") or target["file"])
            listed = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise NotFoundError(
                f"no app of {given} is known here (its apps: {listed or 'none'}): "
                f"`corral start {given}` starts them"
            )
        return matches
    given, path = target.get("given"), target.get("path")
    if not isinstance(given, str) or not isinstance(path, str) or not os.path.isabs(path):
        raise OptionError(
            f"a path target is {{'given': str, 'path': absolute str}}, got {shorten(target)}",
            field="target",
        )
    for matches in (
        [p for p in procs if p.name == given],
        # the app started by this very path before one behind a link (PM2: path.resolve)
        [
            p
            for p in procs
            if not p.is_command and os.path.normpath(p.script) == os.path.normpath(path)
        ],
        [p for p in procs if same_script(p, path)],
        [p for p in procs if p.namespace == given],
    ):
        if matches:
            return matches
    scripts = sorted({p.script for p in procs if not p.is_command})
    known = ", ".join(shorten(s) for s in scripts[:5]) or "none"
    raise NotFoundError(
        f"no process runs {shorten(path)} (given as {shorten(given)}; scripts here: {known}); "
        "`corral ls` lists them"
    )


__all__ = ["REGEX_MAX", "is_regex_target", "same_script", "select_regex", "select_resolved"]
