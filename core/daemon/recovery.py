"""Recovery: what a new daemon does with what the last one of its home left.

After a death: the children it recorded (state file, spawn journal) are ended by
pid, what they left in its cgroups is killed, their pipes drained, and the apps
restarted with their pm_ids. After ``corral update``'s exec: the image before
hands its children over (corral.daemon.handover), and they run on untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral import paths
from corral.daemon.adoption import adopt
from corral.daemon.commands.dumps import restore
from corral.daemon.handover import end_handed_over, read_handover
from corral.daemon.state import load_state, read_journal
from corral.supervisor import cgroup, cgroup_home
from corral.supervisor.fdholder import Drain
from corral.supervisor.kill import kill_orphan, scan_strays
from corral.supervisor.monitor import start_time

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon


class Recovery:
    """``daemon.recovery``: run once by ``Daemon.run``, before the daemon is ready."""

    def __init__(self, kernel: Daemon) -> None:
        self.kernel = kernel
        self.previous_cgroups: list[Path] = []  # where a dead daemon of this home kept them

    async def run(self) -> None:
        """Replace the apps of a daemon that died without stopping them.

        This daemon holds the home's lock (homelock), so no other daemon runs here.
        """
        state = load_state(paths.state_file(self.kernel.home)) or {"apps": []}
        handover = None if self.kernel.in_process else read_handover(self.kernel.home)
        if handover is not None and await self._take_over(handover, state["apps"]):
            return
        spawned = read_journal(paths.journal_file(self.kernel.home))  # children the state missed
        old_pid = state.get("daemon_pid")
        held = self.kernel.output.holder.take() if self.kernel.output.holder is not None else []
        drain = Drain(held, self.kernel.logs)  # what the old children left in their pipes
        if state["apps"] or spawned:
            await self._kill_orphans(state, spawned)
        await self._end_previous_cgroups()  # what the pids above did not reach
        if held:
            drained = await drain.finish(timeout=2.0)
            self.kernel.log.info("drained the old children's pipes", pipes=len(held), bytes=drained)
        if not state["apps"]:
            if spawned:
                self.kernel.mark_dirty()  # empties the journal
            return
        self.kernel.log.info(
            "recovering apps of a daemon that died", count=len(state["apps"]), pid=old_pid
        )
        for entry in state["apps"]:
            with contextlib.suppress(TypeError, ValueError):
                path, *ident = entry.get("pid_file_created") or ()
                self.kernel.pid_files.adopt(Path(path), tuple(int(n) for n in ident))
        await restore(self.kernel.commands, state["apps"], keep_ids=True)

    async def _take_over(self, handover: dict[str, Any], entries: list[dict[str, Any]]) -> bool:
        """Adopt what the image of this process before the exec ran (corral update); on
        any failure its children are ended and the apps restarted as after a death."""
        self.previous_cgroups = []  # the children in them are ours again
        try:
            await adopt(self.kernel, handover, entries)
        except Exception as exc:
            self.kernel.log.error(
                "handover failed: restarting the apps", error=f"{type(exc).__name__}: {exc}"
            )
            for proc in list(self.kernel.procs.values()):
                self.kernel.forget(proc)
            end_handed_over(handover)
            self.previous_cgroups = cgroup_home.previous(self.kernel.home)
            return False
        self.kernel.log.info(
            "took over the apps of the image before the update", count=len(self.kernel.procs)
        )
        return True

    async def _kill_orphans(self, state: dict[str, Any], spawned: list[dict[str, Any]]) -> None:
        """Stop the children a dead daemon recorded (state file, spawn journal), by pid."""
        orphans = {
            entry["pid"]: (entry.get("pid_started"), entry.get("kill_timeout"))
            for entry in spawned
            if "pid" in entry
        }
        # children forked by a daemon killed before their pid was known: by their unique_id
        markers = {entry["unique_id"] for entry in spawned if "unique_id" in entry}
        for pids in scan_strays(markers, skip_groups=()).values():
            for pid in pids:
                orphans.setdefault(pid, (start_time(pid), None))
        for entry in state["apps"]:
            timeout = entry.get("options", {}).get("kill_timeout")
            orphans[entry.get("pid")] = (entry.get("pid_started"), timeout)
        await asyncio.gather(
            *(kill_orphan(pid, started, timeout) for pid, (started, timeout) in orphans.items())
        )

    async def _end_previous_cgroups(self) -> None:
        """SIGKILL what a dead daemon's children left in its cgroups and remove them: the
        descendants that left every process group, parent and environment."""
        for parent in self.previous_cgroups:
            mine = self.kernel.cgroups is not None and parent == self.kernel.cgroups.parent
            for path in self.kernel.cgroups.stale() if self.kernel.cgroups and mine else [parent]:
                left = cgroup.pids(path)
                if not await cgroup.sweep(path):
                    self.kernel.log.error(
                        "processes outlive cgroup.kill", cgroup=str(path), pids=left
                    )
                cgroup.remove_tree(path)
                if left:
                    self.kernel.log.info(
                        "ended what a dead daemon left", cgroup=str(path), pids=left
                    )
        if self.previous_cgroups and self.kernel.cgroups is None:
            cgroup_home.forget_record(self.kernel.home)
        self.previous_cgroups = []
