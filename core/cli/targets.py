"""Config targets as the command line writes them: ``-`` (a config on stdin) and ``--only``.

``cat all.json | corral start -`` reads JSON apps from stdin, as PM2 does; their
relative paths resolve against the caller's directory. ``--only api,worker``
picks some apps of a config file (or of stdin's); a name the file lacks is an
error that lists the file's apps, and nothing is changed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from corral.client.targets import app_name, is_config_target, pick_apps
from corral.errors import OptionError

STDIN = "-"
_read: list[list[dict[str, Any]]] = []  # stdin is read once per invocation


def stdin_apps() -> list[dict[str, Any]]:
    """The apps of the JSON config on stdin (read once), paths resolved against the cwd."""
    if not _read:
        # deferred: the config loader, only for a config on stdin
        from corral.options.config import load_config_text

        if sys.stdin is None or sys.stdin.isatty():
            raise OptionError(
                "target '-' reads a JSON config from stdin: pipe one in "
                "(cat ecosystem.json | corral start -)",
                field="target",
            )
        _read.append(load_config_text(sys.stdin.read(), os.getcwd()))
    return _read[0]


def is_config(target: str) -> bool:
    """Whether ``target`` is a config file or ``-``."""
    return target == STDIN or is_config_target(target)


def app_names(target: str, only: list[str] | None) -> list[str]:
    """The names of the apps of ``target`` (a config file or ``-``) that ``only`` picks."""
    from corral.options.config import (
        load_config,  # deferred: the config loader, only for a config file
    )

    apps = stdin_apps() if target == STDIN else load_config(target)
    source = "stdin's config" if target == STDIN else target
    return list(dict.fromkeys(app_name(app) for app in pick_apps(apps, only, source)))


__all__ = ["STDIN", "app_names", "is_config", "stdin_apps"]
