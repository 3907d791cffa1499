"""Every app instance in a cgroup of its own, so that a stop reaches all it started.

A descendant can leave its process group (``setpgid``), its session
(``setsid``), its parent (a double fork) and its environment (``execve`` with
none), and then nothing ties it to the app: not ``killpg``, not a descendants
snapshot, not the ``unique_id`` scan of :mod:`corral.kill`. It cannot leave
its cgroup, short of writing to the cgroup tree itself.

Where the daemon can make cgroups (cgroup v2 mounted and the daemon's own
cgroup writable: root, or a delegated subtree), each home gets a parent cgroup
below the daemon's own, ``corral-<hash of the home's real path>``, recorded in
``<home>/cgroup.path``; each spawned child a numbered cgroup in it, which holds
the child and every descendant from its first instruction on. A stop ends with
``cgroup.kill`` of its slot's cgroups (frozen, then SIGKILL to every pid, on
kernels before 5.14); a daemon started after one killed with SIGKILL ends
whatever is left in the recorded parent before it restores the apps.

A child is born inside, without being moved: the daemon waits for each fork
in an empty cgroup of the parent, its *nursery*, so the child starts there;
right after the fork a thread moves the daemon on to the next nursery. Moving
a process costs one RCU grace period when no move came just before (about
10 ms here), and this way that wait is neither in the child's start nor on the
daemon's loop (moving in before the fork, or an exec wrapper or ``preexec_fn``
that moves the child, all put it in the child's start). A process another
thread of the daemon forks meanwhile starts in the nursery: it is moved back
to the daemon's own cgroup before the next fork. So an in-process daemon
(``connect(no_daemon=True)``), which shares its host's threads and cgroup, does
not use cgroups unless ``CORRAL_CGROUPS=1``; ``CORRAL_CGROUPS=0`` turns them off.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

ENV = "CORRAL_CGROUPS"
RECORD = "cgroup.path"  # in the home: the parent cgroup of the daemon that runs (or ran) it

# one process-wide lock, held from just before a fork until this process has left the
# child's cgroup: no other fork starts there meanwhile, and no kill of a cgroup reaches us
_LOCK = threading.Lock()
_origin_cache: list[Path | None] = []
_mount_cache: list[tuple[Path, str] | None] = []
_location: list[Path] = []  # where _enter last put this process


def wanted(in_process: bool) -> bool:
    """Whether ``CORRAL_CGROUPS`` lets this daemon use cgroups (auto: detached daemons)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("0", "off", "no", "false"):
        return False
    return value in ("1", "on", "yes", "true") or not in_process


def v2_mount(mountinfo: str | None = None) -> tuple[Path, str] | None:
    """The cgroup v2 mount point and the cgroup path at its root, from ``/proc/self/mountinfo``
    (read once per process)."""
    if mountinfo is None:
        if not _mount_cache:
            try:
                _mount_cache.append(v2_mount(Path("/proc/self/mountinfo").read_text()))
            except OSError:
                return None
        return _mount_cache[0]
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if rest.split()[:1] == ["cgroup2"] and len(parts) >= 5:
            return Path(_unescape(parts[4])), _unescape(parts[3])
    return None


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def own_path(pid: int | str = "self") -> str | None:
    """The cgroup v2 path of a process (``0::<path>`` in ``/proc/<pid>/cgroup``)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            path = line[3:]
            return None if path.endswith(" (deleted)") else path
    return None


def locate(cgroup: str, mount: tuple[Path, str]) -> Path | None:
    """The directory of the cgroup ``cgroup`` under ``mount``; None outside that mount."""
    point, root = mount
    relative = os.path.relpath(cgroup, root)
    if relative.startswith(".."):
        return None
    return point if relative == "." else point / relative


def origin() -> Path | None:
    """The directory of this process's cgroup when it started using cgroups (cached: the
    process visits app cgroups later, always under the lock, and comes back here)."""
    if not _origin_cache:
        with _LOCK:
            if not _origin_cache:
                mount, path = v2_mount(), own_path()
                _origin_cache.append(locate(path, mount) if mount and path else None)
    return _origin_cache[0]


def parent_name(home: Path) -> str:
    """The name of a home's parent cgroup, the same for every daemon of that home."""
    return "corral-" + hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:16]


# -- what is inside a cgroup -----------------------------------------------------


def populated(path: Path) -> bool:
    """Whether a process is left in ``path`` or below it (False once it is gone)."""
    try:
        return "populated 1" in (path / "cgroup.events").read_text()
    except OSError:
        return False


def pids(path: Path) -> list[int]:
    """Every process in ``path`` and the cgroups below it."""
    found = []
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            found.extend(int(p) for p in Path(directory, "cgroup.procs").read_text().split())
    return found


def kill_all(path: Path, *, via_freeze: bool = False) -> None:
    """SIGKILL every process in ``path`` and below: ``cgroup.kill``, or on kernels without
    it (``via_freeze``) freeze the tree so nothing forks, SIGKILL each pid, thaw."""
    with _LOCK:  # never while this process is in a child's cgroup
        if inside(path):
            return  # never this process (a nursery is not an app's cgroup)
        if not via_freeze:
            try:
                (path / "cgroup.kill").write_text("1")
                return
            except FileNotFoundError:
                if not path.is_dir():
                    return
            except OSError:
                pass
        frozen = _write(path / "cgroup.freeze", "1")
        deadline = time.monotonic() + 0.5
        while frozen and "frozen 1" not in _read(path / "cgroup.events"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
        for pid in pids(path):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # a frozen process neither exits nor forks
        if frozen:
            _write(path / "cgroup.freeze", "0")


def inside(path: Path) -> bool:
    """Whether this process is in ``path`` or below it."""
    if _location:
        here: Path | None = _location[0]
    else:
        mount, own = v2_mount(), own_path()
        here = locate(own, mount) if mount and own else None
    return here is not None and here.is_relative_to(path)


def signal_all(path: Path, sig: int) -> list[int]:
    """Send ``sig`` once to every process in ``path`` and below; the pids signalled.

    Each is held by a pidfd first, and signalled only if it is still listed
    there, so a pid reused since the listing is never signalled.
    """
    if sig == signal.SIGKILL:
        kill_all(path)
        return []
    held = {}
    for pid in pids(path):
        if pid == os.getpid():
            continue  # never: this process is only ever inside under the lock
        with contextlib.suppress(OSError):
            held[pid] = os.pidfd_open(pid)
    try:
        still = set(pids(path))
        for pid, fd in held.items():
            if pid in still:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(fd, sig)
    finally:
        for fd in held.values():
            os.close(fd)
    return sorted(held.keys() & still)


async def sweep(path: Path, timeout: float = 5.0) -> bool:
    """SIGKILL everything in ``path`` and below, and wait until it is empty (True), or
    ``timeout`` seconds passed (False: a process that SIGKILL does not end yet)."""
    if not populated(path):
        return True
    kill_all(path)
    deadline = time.monotonic() + timeout
    while populated(path):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


def remove_tree(path: Path, *, keep_root: bool = False) -> bool:
    """rmdir ``path``'s empty cgroups, deepest first; whether all of them went."""
    clean = True
    for directory, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
        if keep_root and Path(directory) == path:
            continue
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            pass
        except OSError:
            clean = False  # a process still in it (or one below)
    return clean


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
    except OSError:
        return False
    return True


# -- one home's cgroups ----------------------------------------------------------


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
            with _LOCK:
                _enter(cgroups.nursery)
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
        _LOCK.acquire()
        try:
            here = self._ready_nursery()
            following, self._spare = self._spare or self._new_dir(), None
        except OSError as exc:
            _LOCK.release()
            raise OSError(exc.errno, f"no cgroup for it in {self.parent}: {exc.strerror}") from exc
        except BaseException:
            _LOCK.release()
            raise
        try:
            yield here
        except BaseException:
            remove_tree(following)  # nothing was born in here: it stays the nursery
            _LOCK.release()
            raise
        self.slots.setdefault(unique_id, []).append(here)
        self.nursery = following
        self._mover.submit(self._leave, following)  # releases the lock once out of ``here``

    def _ready_nursery(self) -> Path:
        """The nursery, this process alone in it (strangers, forked by other threads of
        this process since the last fork, go back to the daemon's own cgroup)."""
        for _ in range(3):
            if not inside(self.nursery):
                try:
                    _enter(self.nursery)
                except OSError:  # removed behind our back: another one
                    self.nursery = self._new_dir()
                    _enter(self.nursery)
            listed = _read(self.nursery / "cgroup.procs").split()  # a leaf: no walk
            strangers = [int(p) for p in listed if int(p) != os.getpid()]
            if not strangers:
                return self.nursery
            for pid in strangers:
                _write(self.origin / "cgroup.procs", str(pid))
        self.nursery = self._new_dir()  # strangers that keep forking: leave them there
        _enter(self.nursery)
        return self.nursery

    def _leave(self, target: Path) -> None:
        try:
            _enter(target)
            self._spare = self._new_dir()
        except OSError:  # never stay in a child's cgroup
            with contextlib.suppress(OSError):
                _enter(self.origin)
        finally:
            _LOCK.release()

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
        with _LOCK:
            _enter(self.origin)
            for pid in pids(self.nursery):
                _write(self.origin / "cgroup.procs", str(pid))
        self._pruner.drain()
        if remove_tree(self.parent):
            with contextlib.suppress(OSError):
                (self.home / RECORD).unlink()


def _enter(path: Path) -> None:
    """Move this process into ``path`` (the caller holds the lock)."""
    (path / "cgroup.procs").write_text("0")
    _location[:] = [path]


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
