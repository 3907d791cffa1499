"""The state file: every slot with its child's pid, rewritten once per loop turn
after any change, so a daemon that dies leaves the next one (corral.daemon.recovery)
a list of the apps to restart and the children to end."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any

from corral import paths
from corral.daemon.commands.dumps import saved_entry
from corral.daemon.state import save_state
from corral.supervisor import lifecycle

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.process import ManagedProcess


COSTLY = 0.005  # seconds: a write that took longer spaces the next one out
SPACING = 9  # the next costly write waits 9x as long: at most a tenth of the loop's time


class StateFile:
    """``daemon.state_file``: written through :meth:`mark_dirty` (the kernel's) and at
    the end of a shutdown."""

    def __init__(self, kernel: Daemon) -> None:
        self.kernel = kernel
        self._scheduled: asyncio.Handle | None = None
        self._not_before = 0.0  # loop time: a costly write waits (see write)
        # pm_ids a batch registered and is launching (corral.daemon.commands.creation):
        # saved as launching, so a daemon killed mid-batch has the next one start them
        self.pending: set[int] = set()

    def mark_dirty(self) -> None:
        """Rewrite the state file soon, once, however many changes come first."""
        loop = self.kernel.loop
        if self._scheduled is not None or loop is None:
            return
        wait = self._not_before - loop.time()
        if wait > 0:
            self._scheduled = loop.call_later(wait, self.write)
        else:
            self._scheduled = loop.call_soon(self.write)

    def write(self) -> None:
        """Write it now. A write of a large state (over ``COSTLY`` seconds) keeps the next
        one at least ``SPACING`` times as long away: a batch that hands the loop to other
        calls every few ms (corral.daemon.pacing) would otherwise write the whole state
        each time (O(n^2) over a start of n apps). The children spawned meanwhile are in
        the journal, written at each spawn."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        started = time.perf_counter()
        apps = [self._entry(p) for p in self.kernel.procs.values()]
        try:
            self.kernel.fds.call(save_state, paths.state_file(self.kernel.home), apps, os.getpid())
        except OSError as exc:
            self.kernel.log.error("cannot write the state file", error=str(exc))
            return
        finally:
            spent = time.perf_counter() - started
            if spent > COSTLY and self.kernel.loop is not None:
                self._not_before = self.kernel.loop.time() + spent * SPACING
        if self.kernel.journal is not None:
            self.kernel.journal.clear()  # the state file names every child now

    def _entry(self, proc: ManagedProcess) -> dict[str, Any]:
        entry = saved_entry(proc)
        if proc.pm_id in self.pending and proc.state == lifecycle.ProcessState.STOPPED:
            entry["status"] = lifecycle.ProcessState.LAUNCHING.value
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
