"""The ``deploy`` plugin: ``corral deploy [CONFIG] ENV setup|update|revert|...``, as ``pm2 deploy``.

Reads PM2's ``deploy`` section unchanged (:mod:`.target`), and drives each host
through the system's ``ssh`` and ``git`` with a bash script on stdin
(:mod:`.script`), every host at once (:mod:`.hosts`). The layout on the hosts is
PM2's, ``path/source``, ``path/current``, ``path/shared``, ``path/.deploys``, so a
host PM2 deployed can be taken over. Nothing runs in the daemon.
"""

from __future__ import annotations

from typing import Any

import corral

from .commands import COMMANDS, DEFAULT_FILES, deploy, load_target, parse_request
from .hosts import HostResult, run_all, ssh_argv
from .script import build
from .target import HOOKS, Target, select_target

__all__ = [
    "COMMANDS",
    "DEFAULT_FILES",
    "HOOKS",
    "HostResult",
    "Target",
    "build",
    "deploy",
    "load_target",
    "parse_request",
    "run_all",
    "select_target",
    "ssh_argv",
]


@corral.hookimpl
def corral_cli(group: Any) -> None:
    from .cli import deploy_command  # deferred: click loads in the CLI only

    group.add_command(deploy_command)
