"""The commands that show processes (list, describe) and zero their counters or logs (reset, flush).

``list`` answers in the ``pm2 jlist`` shape, encoded once here; ``describe`` gives
the processes a target names in full, with fresh memory and CPU figures.

``list`` with ``form="rows"`` (what ``client.list()`` sends) answers in a compact
form instead (:mod:`corral.daemon.commands.rows`): the field names once, a row of
values per process, no environment unless ``env=True``. The old form (no
arguments) answers as before, for a client of an older corral.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from corral import paths
from corral.daemon.commands import rows
from corral.errors import OptionError, shorten
from corral.rpc.wire import RawJSON
from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.commands import Commands


def cmd_list(cmds: Commands, form: str | None = None, env: bool = False) -> RawJSON:
    """Every process in the ``pm2 jlist`` shape, encoded here (see ManagedProcess.to_json);
    with ``form="rows"``, in the compact form (:mod:`corral.daemon.commands.rows`)."""
    if form not in (None, "rows"):
        raise OptionError(f"list takes form 'rows' or none, got {shorten(form)}", field="form")
    if not isinstance(env, bool):
        raise OptionError(f"list's env is true or false, got {shorten(env)}", field="env")
    procs = sorted(cmds.procs.values(), key=lambda p: p.pm_id)
    if form == "rows":
        return RawJSON(rows.encode(cmds, procs, env))
    cmds.sample(procs)
    return RawJSON(("[" + ",".join(p.to_json() for p in procs) + "]").encode())


def cmd_describe(cmds: Commands, target: Any) -> RawJSON:
    """The processes ``target`` names, in full with fresh figures, encoded as ``list``
    encodes them (a start's client polls 1,000 of them while they come up)."""
    procs = cmds.select(target)
    cmds.sample(procs)
    return RawJSON(("[" + ",".join(p.to_json() for p in procs) + "]").encode())


def cmd_reset(cmds: Commands, target: Any) -> list[dict[str, Any]]:
    """PM2's resetMetaProcessId: restart_time and unstable_restarts to 0, created_at now."""
    procs = cmds.select(target)
    now = int(time.time() * 1000)
    for proc in procs:
        proc.history = lifecycle.on_reset(proc.history, now)
    return cmds.describe_all(procs)


def cmd_flush(cmds: Commands, target: Any = None) -> list[str]:
    procs = cmds.select(target) if target is not None else list(cmds.procs.values())
    flushed = []
    for proc in procs:
        creds = cmds.daemon.credentials(proc)
        for path in {p for p in proc.log_paths.values() if p is not None}:
            if cmds.daemon.logs.truncate(path, creds):
                flushed.append(str(path))
    if target is None:
        log_path = paths.log_file(cmds.daemon.home)
        os.truncate(log_path, 0)
        flushed.append(str(log_path))
    return flushed


__all__ = ["cmd_describe", "cmd_flush", "cmd_list", "cmd_reset"]
