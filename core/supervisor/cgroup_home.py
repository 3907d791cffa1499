"""A home's cgroups: where they are, how a child is born in one, what a dead daemon left.

Each home gets a parent cgroup below the daemon's own,
``corral-<hash of the home's real path>``, recorded in ``<home>/cgroup.path``;
each spawned child a cgroup ``<daemon pid>-<n>`` in it, which holds the child
and every descendant from its first instruction on (cgroup v2 cannot rename a
cgroup, so the daemon keeps which slot each belongs to). A daemon started after
one killed with SIGKILL ends whatever is left in the recorded parent before it
restores the apps.

A child is born inside, without being moved: the daemon waits for each fork
in an empty cgroup of the parent, its *nursery*, so the child starts there;
right after the fork a thread moves the daemon on to the next nursery (made
ahead). Moving a process costs one RCU grace period when no move came just
before (about 10 ms here), and this way that wait is neither in the child's
start nor on the daemon's loop (moving in before the fork, or an exec wrapper
or ``preexec_fn`` that moves the child, all put it in the child's start). A
process another thread of the daemon forks while it waits in the nursery is
moved back to the daemon's own cgroup before the next fork; one forked in the
few ms before the mover takes the daemon out of a child's cgroup stays there.
That is why an in-process daemon does not use cgroups unless asked to.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from corral.supervisor.cgroup import (
    LOCK,
    enter,
    inside,
    kill_all,
    origin,
    parent_name,
    pids,
    populated,
    read_file,
    remove_tree,
    try_write,
    v2_mount,
)

RECORD = "cgroup.path"  # in the home: the parent cgroup of the daemon that runs (or ran) it


class Cgroups:
    """A home's parent cgroup, the nursery this process forks in, and the children's cgroups."""

    def __init__(self, home: Path, origin: Path) -> None:
        self.home = home
        self.origin = origin
        self.parent = origin / parent_name(home)
        self.nursery = self.parent
        self._spare: Path | None = None  # the next nursery, made ahead on the mover's thread
        self.slots: dict[str, list[Path]] = {}  # unique_id -> its children's cgroups, in use
        self._numbers = itertools.count(1)
        self._mover = _Worker("corral-cgroup-mover")
        self._pruner = _Worker("corral-cgroup-pruner")

    @classmethod
    def open(cls, home: Path) -> Cgroups | None:
        """The home's cgroups, this process in its first nursery; None where they cannot be
        made here."""
        start = origin()
        if start is None:
            return None
        cgroups = cls(home, start)
        try:
            cgroups.parent.mkdir(exist_ok=True)
            cgroups.nursery = cgroups._new_dir()
            with LOCK:
                enter(cgroups.nursery)
        except OSError:
            remove_tree(cgroups.parent)
            return None
        with contextlib.suppress(OSError):  # without it, found by its name from here only
            (home / RECORD).write_text(str(cgroups.parent))
        return cgroups

    def _new_dir(self) -> Path:
        while True:  # a dead daemon's cgroups may still be there, named the same
            path = self.parent / f"{os.getpid()}-{next(self._numbers)}"
            with contextlib.suppress(FileExistsError):
                path.mkdir()
                return path

    @contextlib.contextmanager
    def born_in(self, unique_id: str) -> Iterator[Path]:
        """Around one fork: inside, this process is alone in a fresh cgroup, which is the
        cgroup of what it forks; that joins the slot ``unique_id`` unless the fork fails."""
        LOCK.acquire()
        try:
            here = self._ready_nursery()
            following, self._spare = self._spare or self._new_dir(), None
        except OSError as exc:
            LOCK.release()
            raise OSError(exc.errno, f"no cgroup for it in {self.parent}: {exc.strerror}") from exc
        except BaseException:
            LOCK.release()
            raise
        try:
            yield here
        except BaseException:
            remove_tree(following)  # nothing was born in here: it stays the nursery
            LOCK.release()
            raise
        self.slots.setdefault(unique_id, []).append(here)
        self.nursery = following
        self._mover.submit(self._leave, following)  # releases the lock once out of ``here``

    @contextlib.contextmanager
    def fresh(self, unique_id: str) -> Iterator[Path]:
        """A new, empty cgroup for one child that another process (the spawner) forks
        straight into it; it joins the slot ``unique_id`` unless the spawn fails."""
        with LOCK:
            path, self._spare = self._spare, None
        try:
            path = path or self._new_dir()
        except OSError as exc:
            raise OSError(exc.errno, f"no cgroup for it in {self.parent}: {exc.strerror}") from exc
        try:
            yield path
        except BaseException:
            remove_tree(path)
            raise
        self.slots.setdefault(unique_id, []).append(path)
        self._mover.submit(self._make_spare)

    def _make_spare(self) -> None:
        with LOCK:
            if self._spare is None:
                self._spare = self._new_dir()

    def _ready_nursery(self) -> Path:
        """The nursery, this process alone in it (strangers, forked by other threads of
        this process since the last fork, go back to the daemon's own cgroup)."""
        for _ in range(3):
            if not inside(self.nursery):
                try:
                    enter(self.nursery)
                except OSError:  # removed behind our back: another one
                    self.nursery = self._new_dir()
                    enter(self.nursery)
            listed = read_file(self.nursery / "cgroup.procs").split()  # a leaf: no walk
            strangers = [int(p) for p in listed if int(p) != os.getpid()]
            if not strangers:
                return self.nursery
            for pid in strangers:
                try_write(self.origin / "cgroup.procs", str(pid))
        self.nursery = self._new_dir()  # strangers that keep forking: leave them there
        enter(self.nursery)
        return self.nursery

    def _leave(self, target: Path) -> None:
        try:
            enter(target)
            self._spare = self._new_dir()
        except OSError:  # never stay in a child's cgroup
            with contextlib.suppress(OSError):
                enter(self.origin)
        finally:
            LOCK.release()

    def of_slot(self, unique_id: str) -> list[Path]:
        """The cgroups of a slot's children that are still there."""
        return list(self.slots.get(unique_id, ()))

    def prune(self, unique_id: str, paths: Iterable[Path] | None = None) -> None:
        """Forget the slot's empty cgroups (``paths`` of them; all by default) and remove
        them on a thread (nothing enters an empty cgroup again)."""
        kept = self.slots.get(unique_id, [])
        for path in list(kept if paths is None else paths):
            if not populated(path):
                if path in kept:
                    kept.remove(path)
                self._pruner.submit(remove_tree, path)
        if not kept:
            self.slots.pop(unique_id, None)

    def stale(self) -> list[Path]:
        """The cgroups in the parent that are not this daemon's (a dead daemon's)."""
        mine = {self.nursery, self._spare, *(p for paths in self.slots.values() for p in paths)}
        return [p for p in self.parent.iterdir() if p.is_dir() and p not in mine]

    def close(self) -> None:
        """Back to the daemon's own cgroup; every empty cgroup removed, the parent last, and
        the record once it is gone."""
        with LOCK:
            enter(self.origin)
            for pid in pids(self.nursery):
                try_write(self.origin / "cgroup.procs", str(pid))
        self._pruner.drain()
        if remove_tree(self.parent):
            with contextlib.suppress(OSError):
                (self.home / RECORD).unlink()


class _Worker:
    """A thread of its own for slow cgroup writes (a move or an rmdir of a cgroup that
    had processes waits for an RCU grace period, about 10 ms here), started on first use."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.jobs: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None

    def submit(self, job: Callable[..., object], *args: object) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self.thread.start()
        self.jobs.put((job, args))

    def _run(self) -> None:
        while True:
            job, args = self.jobs.get()
            with contextlib.suppress(Exception):
                job(*args)
            self.jobs.task_done()

    def drain(self) -> None:
        if self.thread is not None:
            self.jobs.join()


class _EarlyOpen:
    """:func:`previous` and :meth:`Cgroups.open` of one home, on a thread of their own."""

    def __init__(self, home: Path) -> None:
        self.home = Path(os.path.realpath(home))
        self._done: list[tuple[list[Path], Cgroups | None]] = []
        self._thread = threading.Thread(target=self._open, name="corral-cgroup-open", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        found = previous(self.home)  # before open() writes the new record
        self._done.append((found, Cgroups.open(self.home)))

    def result(self) -> tuple[list[Path], Cgroups | None] | None:
        """What the thread found and opened; None if it failed."""
        self._thread.join()
        return self._done[0] if self._done else None


_begun: list[_EarlyOpen] = []  # begin_open's, until open_home takes it


def begin_open(home: Path) -> None:
    """Begin :func:`open_home` for ``home`` on a thread. The detached daemon's entry
    (:mod:`corral.daemon.main`) calls this before its imports: entering the first
    nursery waits for an RCU grace period (10-20 ms here), which then passes while the
    imports run, instead of before the daemon serves."""
    if not _begun:
        atexit.register(_abandon)
    _begun.append(_EarlyOpen(home))


def _abandon() -> None:
    """At exit, what :func:`begin_open` made and no :func:`open_home` took (the daemon
    failed before it got there): closed, so no empty cgroup and no record stay behind."""
    while _begun:
        done = _begun.pop().result()
        if done is not None and done[1] is not None:
            with contextlib.suppress(OSError):
                done[1].close()


def open_home(home: Path, wanted: bool) -> tuple[list[Path], Cgroups | None]:
    """The parent cgroups an earlier daemon of ``home`` left (:func:`previous`), and, when
    ``wanted``, the home's cgroups with this process in its first nursery (None where they
    cannot be made): what :func:`begin_open` did for the same home, or done now."""
    early = _begun.pop() if _begun else None
    done = early.result() if early is not None else None
    if done is not None and early is not None:
        if early.home == Path(os.path.realpath(home)):
            return done
        if done[1] is not None:  # another home's: not left behind
            done[1].close()
    found = previous(home)  # before open() writes the new record
    return found, Cgroups.open(home) if wanted else None


def previous(home: Path) -> list[Path]:
    """The parent cgroups an earlier daemon of ``home`` may have left processes in: the one
    its record names and the one a daemon started here uses; only real cgroups of that name."""
    mount = v2_mount()
    if mount is None:
        return []
    found = []
    with contextlib.suppress(OSError):
        found.append(Path((home / RECORD).read_text().strip()))
    start = origin()
    if start is not None:
        found.append(start / parent_name(home))
    name = parent_name(home)
    mine = []
    for path in found:
        real = Path(os.path.realpath(path))
        if real.name == name and real.is_relative_to(mount[0]) and (real / "cgroup.procs").exists():
            if real not in mine:
                mine.append(real)
    return mine


def end_home(home: Path, timeout: float = 5.0) -> None:
    """SIGKILL whatever is left in the parent cgroups of ``home``'s daemons, and remove them:
    for a home whose daemon is gone and will not be replaced (a test's, at its end)."""
    for path in previous(home):
        kill_all(path)
        deadline = time.monotonic() + timeout
        while populated(path) and time.monotonic() < deadline:
            time.sleep(0.005)
        remove_tree(path)
    forget_record(home)


def forget_record(home: Path) -> None:
    with contextlib.suppress(OSError):
        (home / RECORD).unlink()
