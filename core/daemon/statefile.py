"""The state file: every slot with its child's pid, rewritten once per loop turn
after any change, so a daemon that dies leaves the next one (corral.daemon.recovery)
a list of the apps to restart and the children to end."""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any

from corral import paths
from corral.daemon.commands.dumps import saved_entry
from corral.daemon.state import save_state

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.process import ManagedProcess


class StateFile:
    """``daemon.state_file``: written through :meth:`mark_dirty` (the kernel's) and at
    the end of a shutdown."""

    def __init__(self, kernel: Daemon) -> None:
        self.kernel = kernel
        self._scheduled = False

    def mark_dirty(self) -> None:
        """Rewrite the state file soon, once, however many changes come first."""
        if self._scheduled or self.kernel.loop is None:
            return
        self._scheduled = True
        self.kernel.loop.call_soon(self.write)

    def write(self) -> None:
        self._scheduled = False
        apps = [self._entry(p) for p in self.kernel.procs.values()]
        try:
            self.kernel.fds.call(save_state, paths.state_file(self.kernel.home), apps, os.getpid())
        except OSError as exc:
            self.kernel.log.error("cannot write the state file", error=str(exc))
            return
        if self.kernel.journal is not None:
            self.kernel.journal.clear()  # the state file names every child now

    def _entry(self, proc: ManagedProcess) -> dict[str, Any]:
        entry = saved_entry(proc)
        entry.update(
            pm_id=proc.pm_id,
            pid=proc.pid,
            pid_started=proc.child.started if proc.child is not None else None,
            history=dataclasses.asdict(proc.history),
        )
        ident = self.kernel.pid_files.identity(proc.pid_path)
        if ident is not None:  # the next daemon may rewrite and remove it (pidfile.py)
            entry["pid_file_created"] = [str(proc.pid_path), *ident]
        return entry
