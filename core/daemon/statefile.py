"""The state file: every slot with its child's pid, rewritten once per loop turn
after any change, so a daemon that dies leaves the next one (corral.daemon.recovery)
a list of the apps to restart and the children to end.

Each app's entry is kept encoded until something in it changes (:class:`EntryCache`):
a write of 1,000 apps joined 3 MB of JSON it encoded again each time (60 ms, and
150 ms more building the entries), holding the loop while a start ran.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from corral import paths
from corral.daemon.commands.dumps import saved_entry
from corral.daemon.state import encode_entry, save_encoded_state
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
        self.entries = EntryCache()

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
        apps = self.entries.encode(
            self.kernel.procs.values(), self._status, self._pid_file, entry_of
        )
        try:
            self.kernel.fds.call(
                save_encoded_state, paths.state_file(self.kernel.home), apps, os.getpid()
            )
        except OSError as exc:
            self.kernel.log.error("cannot write the state file", error=str(exc))
            return
        finally:
            spent = time.perf_counter() - started
            if spent > COSTLY and self.kernel.loop is not None:
                self._not_before = self.kernel.loop.time() + spent * SPACING
        if self.kernel.journal is not None:
            self.kernel.journal.clear()  # the state file names every child now

    def _status(self, proc: ManagedProcess) -> str:
        """Its state; a process a batch registered and has not launched yet is launching."""
        if proc.pm_id in self.pending and proc.state == lifecycle.ProcessState.STOPPED:
            return lifecycle.ProcessState.LAUNCHING.value
        return proc.state.value

    def _pid_file(self, proc: ManagedProcess) -> list[int] | None:
        return self.kernel.pid_files.identity(proc.pid_path)


def entry_of(proc: ManagedProcess, status: str, pid_file: list[int] | None) -> dict[str, Any]:
    """What the state file keeps of ``proc``: its dump entry, pid, history and pid file."""
    entry = saved_entry(proc)
    entry.update(
        status=status,
        pm_id=proc.pm_id,
        pid=proc.pid,
        pid_started=proc.child.started if proc.child is not None else None,
        history=dataclasses.asdict(proc.history),
    )
    if pid_file is not None:  # the next daemon may rewrite and remove it (pidfile.py)
        entry["pid_file_created"] = [str(proc.pid_path), *pid_file]
    return entry


class EntryCache:
    """Each process's state-file entry, encoded, kept until one of its fields changes.

    The key holds what the entry is made of: the options and env by identity (the
    daemon replaces them, never changes them in place, as ``ManagedProcess.to_json``
    relies on too), every other field by value. A write re-encodes only the changed
    processes and forgets the ones that are gone.
    """

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[tuple, bytes]] = {}
        self.encoded = 0  # entries encoded so far (a test counts them)

    def encode(
        self,
        procs: Iterable[ManagedProcess],
        status: Callable[[ManagedProcess], str],
        pid_file: Callable[[ManagedProcess], list[int] | None],
        entry: Callable[[ManagedProcess, str, list[int] | None], dict[str, Any]],
    ) -> list[bytes]:
        """The entries of ``procs``, in order: each one's bytes from the last write
        unless a field of it changed."""
        kept: dict[int, tuple[tuple, bytes]] = {}
        out = []
        for proc in procs:
            state = status(proc)
            ident = pid_file(proc)
            child = proc.child
            key = (
                proc.options,
                proc.env,
                state,
                proc.name,
                proc.instance,
                proc.unique_id,
                proc.config_file,
                proc.held_by,
                child.pid if child is not None else None,
                child.started if child is not None else None,
                proc.history,
                proc.pid_path,
                ident,
            )
            cached = self._by_id.get(proc.pm_id)
            if cached is None or not _same(cached[0], key):
                cached = (key, encode_entry(entry(proc, state, ident)))
                self.encoded += 1
            kept[proc.pm_id] = cached
            out.append(cached[1])
        self._by_id = kept
        return out


def _same(old: tuple, new: tuple) -> bool:
    """The options and env are the same objects, and every other field is equal."""
    return old[0] is new[0] and old[1] is new[1] and old[2:] == new[2:]
