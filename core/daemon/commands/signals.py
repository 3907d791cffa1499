"""The commands that reach into a running process: signals, a channel packet, a stdin line.

PM2's sendSignalToProcessName, sendSignalToProcessId, sendDataToProcessId and
sendLineToStdin; a signal is named (``SIGUSR1``, ``usr1``) or numbered.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from corral.errors import NotFoundError, OptionError, StateError, shorten
from corral.options.convert import signal_of
from corral.supervisor import lifecycle, stdin

if TYPE_CHECKING:
    from corral.daemon.commands import Commands


def parse_signal(value: Any) -> int:
    """``SIGUSR1``, ``USR1``, ``sigusr1`` or a number, to a signal number."""
    found = signal_of(value) if isinstance(value, (str, int)) else None
    if found is None:
        raise OptionError(
            f"unknown signal {shorten(value)}: use a name such as SIGUSR1 or SIGTERM, "
            "or its number (see `kill -l`)",
            field="signal",
        )
    return int(found)


async def cmd_send_signal_to_process_name(
    cmds: Commands, signal: Any, target: Any
) -> list[dict[str, Any]]:
    number = parse_signal(signal)
    procs = cmds.select(target)
    for proc in procs:
        if proc.pid and proc.state in lifecycle.RUNNING_STATES:
            os.kill(proc.pid, number)
    return cmds.describe_all(procs)


async def cmd_send_signal_to_process_id(
    cmds: Commands, pm_id: Any, signal: Any
) -> list[dict[str, Any]]:
    number = parse_signal(signal)
    if str(pm_id) not in {str(i) for i in cmds.procs}:
        raise NotFoundError(f"no process has pm_id {shorten(pm_id)}; `corral ls` lists them")
    proc = cmds.procs[int(pm_id)]
    if not proc.pid or proc.state not in lifecycle.SIGNALLABLE_STATES:
        raise StateError(
            f"process {pm_id} ({proc.name}) is {proc.state.value}: it has no pid to signal"
        )
    os.kill(proc.pid, number)
    return cmds.describe_all([proc])


def cmd_send_data_to_process_id(cmds: Commands, pm_id: Any, packet: Any) -> dict[str, Any]:
    """PM2's sendDataToProcessId: the packet goes to the child unchanged."""
    if not isinstance(packet, dict) or "data" not in packet or "topic" not in packet:
        raise OptionError(
            f"a packet is an object with 'topic' and 'data' (PM2's shape), got {shorten(packet)}",
            field="packet",
        )
    if isinstance(pm_id, str) and pm_id.isascii() and pm_id.isdigit():
        pm_id = int(pm_id)
    proc = cmds.procs.get(pm_id) if isinstance(pm_id, int) else None
    if proc is None:
        raise NotFoundError(f"no process has pm_id {shorten(pm_id)}; `corral ls` lists them")
    if proc.state not in lifecycle.RUNNING_STATES:
        raise StateError(f"process {pm_id} ({proc.name}) is {proc.state.value}, not online")
    packet = {**packet, "id": pm_id}
    proc.slot.send_message(packet)
    return {"success": True, "data": packet}


def cmd_send_line(cmds: Commands, pm_id: Any, line: Any) -> dict[str, Any]:
    """PM2's sendLineToStdin: ``line`` and a newline to the stdin of ``pm_id``."""
    return stdin.send_line(cmds.daemon, pm_id, line)


__all__ = [
    "cmd_send_data_to_process_id",
    "cmd_send_line",
    "cmd_send_signal_to_process_id",
    "cmd_send_signal_to_process_name",
    "parse_signal",
]
