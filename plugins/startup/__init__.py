"""The ``startup`` plugin: ``corral startup`` / ``corral unstartup``, as ``pm2 startup``.

A platform name (PM2's: ``ubuntu``, ``centos``, ``amazon``, ``darwin``, ...) maps
to an init system (:data:`PLATFORMS`); with no name the init system is detected
the way PM2 does, from the first tool found on ``PATH`` (:data:`DETECTION`).
A generator of this package (``startup_systemd``: :mod:`.systemd`,
``startup_launchd``: :mod:`.launchd`, ``startup_openrc``, ``startup_upstart``,
``startup_sysv``, ``startup_rcd``, each its own entry point) renders the file
through the ``corral_startup_script`` hook; this plugin writes it and runs the
commands that enable it. Everything runs in the client process, where the
user typed the command; the daemon is only asked to dump its list.

Not root (and the script goes in a system directory), or ``print_only``: nothing
is written; the result carries the text and the one command to run as root,
``sudo env PATH=$PATH:<bindir> corral startup <platform> -u <user> --hp <home>``,
as PM2 prints it. User-level scripts (a launchd agent, a ``systemd --user`` unit)
need no root.

Without this plugin (``CORRAL_PLUGINS=`` or ``connect(plugins=[])``) there is
no ``corral startup`` command, and ``Client.startup()`` raises PluginError.
"""

from __future__ import annotations

from typing import Any

import corral

from .boot import report, save_list, startup, unstartup
from .context import (
    StartupContext,
    StartupResult,
    StartupScript,
    build_path,
    current_user,
    find_corral_bin,
)
from .install import install, render, run_command, sudo_command, under, uninstall
from .platforms import DETECTION, PLATFORMS, PLUGINS, detect_init_system, resolve_platform

__all__ = [
    "DETECTION",
    "PLATFORMS",
    "PLUGINS",
    "StartupContext",
    "StartupResult",
    "StartupScript",
    "build_path",
    "current_user",
    "detect_init_system",
    "find_corral_bin",
    "install",
    "render",
    "report",
    "resolve_platform",
    "run_command",
    "save_list",
    "startup",
    "sudo_command",
    "under",
    "uninstall",
    "unstartup",
]


@corral.hookimpl
def corral_cli(group: Any) -> None:
    from .cli import startup_command, unstartup_command  # deferred: click loads in the CLI only

    group.add_command(startup_command)
    group.add_command(unstartup_command)
