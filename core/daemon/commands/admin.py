"""The commands about the daemon itself: ping, plugins, options, kill_daemon and update.

``kill_daemon`` stops every app first; ``update`` re-executes the daemon as another
corral with the apps kept running (corral.daemon.upgrade).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from corral import __version__
from corral.daemon.upgrade import leave_for_update
from corral.supervisor.process import now_ms

if TYPE_CHECKING:
    from corral.daemon.commands import Commands


def cmd_ping(cmds: Commands) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "version": __version__,
        "home": str(cmds.daemon.home),
        "uptime_ms": now_ms() - cmds.daemon.started_at,
        "apps": len(cmds.procs),
        "recovering": not cmds.daemon.recovered.is_set(),
        **cmds.daemon.install,  # version, install_path, python (corral.daemon.upgrade)
    }


def cmd_plugins(cmds: Commands) -> list[dict[str, Any]]:
    return cmds.daemon.manager.plugin_records()


def cmd_options(cmds: Commands) -> list[dict[str, Any]]:
    return [
        {
            "name": o.name,
            "type": o.type,
            "default": o.default,
            "aliases": list(o.aliases),
            "help": o.help,
            "choices": list(o.choices),
            "plugin": o.plugin,
        }
        for o in cmds.daemon.schema
    ]


async def cmd_kill_daemon(cmds: Commands) -> dict[str, Any]:
    cmds.daemon.shutting_down = True  # first: a restart in flight must not spawn now
    procs = list(cmds.procs.values())
    await asyncio.gather(*(p.slot.stop_process(manually=True) for p in procs))
    for proc in procs:
        cmds.daemon.emit(proc, "delete", manually=True)
        cmds.daemon.forget(proc)
    cmds.daemon.request_stop()
    return {"pid": os.getpid(), "stopped": len(procs)}


def cmd_update(cmds: Commands, python: str | None = None, pythonpath: str | None = None) -> Any:
    return leave_for_update(cmds.daemon, python, pythonpath)


__all__ = ["cmd_kill_daemon", "cmd_options", "cmd_ping", "cmd_plugins", "cmd_update"]
