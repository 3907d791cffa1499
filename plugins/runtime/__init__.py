"""The ``runtime`` plugin: ``corral runtime``, the manager of a container (PM2's
``pm2-runtime``), and ``corral ready``, its readiness probe.

:mod:`.init` makes PID 1 an init (it reaps and passes signals on), :mod:`.run`
runs a daemon in the foreground with the apps of a file and turns their fate into
an exit code, :mod:`.output` prints their output. Every other plugin works as in
a daemon; ``CORRAL_RUNTIME=1`` tells them the container enforces what they cannot
(the cgroups plugin's limits).
"""

from __future__ import annotations

from typing import Any

import corral


@corral.hookimpl
def corral_cli(group: Any) -> None:
    from .cli import ready_command, runtime_command  # deferred: click loads in the CLI only

    group.add_command(runtime_command)
    group.add_command(ready_command)
