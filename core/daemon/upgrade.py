"""Safe upgrades: which corral a daemon runs, and ``corral update``.

A daemon records at its start which corral it runs (version, the directory of
the ``corral`` package, the Python executable) and ``ping`` tells it. A client
whose own corral differs says so once, on stderr, and names the fix
(``corral update``). This module is imported by every client, so it keeps to
the standard library at the top.

``update`` brings the daemon to the code the client runs. Without a handover
in place the daemon writes its state file (every app with its pm_id, pid,
restart counts and log paths), then leaves its children running and exits;
the next daemon, started by the client from the installed code, takes them
over with the dead daemon's
recovery (``Recovery.run``, corral.daemon.recovery): each app is restarted under its
pm_id with its counts and logs. That is PM2's ``pm2 update`` (dump, kill,
resurrect), without losing the ids or the counts. Where it can, the daemon
hands its running children over to a re-executed image of itself instead, and
they keep running (:mod:`corral.daemon.handover`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from corral import __version__
from corral.errors import CorralWarning, StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def install_path() -> str:
    """The real directory of the ``corral`` package this process runs."""
    return os.path.realpath(Path(__file__).parent.parent)  # corral/, above corral/daemon/


def install_info() -> dict[str, str]:
    """``version``, ``install_path`` and ``python`` of this process's corral."""
    return {"version": __version__, "install_path": install_path(), "python": sys.executable}


def mismatch(reply: dict[str, Any]) -> str | None:
    """The warning for a daemon (its ``ping`` reply) that runs another corral than this
    process, or None when it runs this one (or is too old to say)."""
    theirs, where = reply.get("version"), reply.get("install_path")
    if theirs is None or where is None:
        return None
    mine = install_info()
    if theirs == mine["version"] and where == mine["install_path"]:
        return None
    return (
        f"the daemon runs corral {theirs} from {where}, this is corral {mine['version']} "
        f"from {mine['install_path']}: run `corral update`"
    )


_warned: set[tuple[Any, ...]] = set()


def warn_if_other(reply: dict[str, Any]) -> None:
    """Warn once per process (one CLI command) about a daemon of another corral."""
    message = mismatch(reply)
    key = (reply.get("pid"), reply.get("version"), reply.get("install_path"))
    if message is None or key in _warned:
        return
    _warned.add(key)
    import warnings

    warnings.warn(message, CorralWarning, stacklevel=3)


# -- the daemon's side -------------------------------------------------------


def leave_for_update(daemon: Any, python: str | None, pythonpath: str | None) -> dict[str, Any]:
    """``update``: stop serving, leaving every app running and in the state file; the
    next daemon (started by the client, from the installed code) takes them over."""
    # deferred: the daemon's side of handover, never in a client
    from corral.daemon.handover import handover_blocker

    if daemon.in_process:
        raise StateError(
            "an in-process daemon (connect(no_daemon=True)) runs its program's own code: "
            "restart the program to update it"
        )
    if daemon.leaving is not None:
        raise StateError("an update of this daemon is already under way")
    apps = [
        {"pm_id": p.pm_id, "name": p.name, "pid": p.pid, "status": p.state.value}
        for p in daemon.processes()
    ]
    if python is None:  # no client's corral named: this daemon's own, as it was started
        python, pythonpath = sys.executable, os.environ.get("PYTHONPATH")
    blocker = handover_blocker(daemon, python)
    daemon.leaving = "restart" if blocker else "exec"
    daemon.successor = (python, pythonpath)
    daemon.shutting_down = True  # from now on nothing is spawned: the next daemon does
    for proc in daemon.procs.values():
        if proc.restart_timer is not None:
            proc.restart_timer.cancel()  # its slot stays "waiting restart" in the state file
            proc.restart_timer = None
    daemon.log.info(
        "update: handing the apps over", apps=len(apps), how=daemon.leaving, why_not=blocker
    )
    daemon.request_stop()
    reply = {"pid": os.getpid(), "handover": daemon.leaving, "apps": apps, **daemon.install}
    return {**reply, "why_restarted": blocker}
