"""Every app instance in a cgroup of its own, so that a stop reaches all it started.

A descendant can leave its process group (``setpgid``), its session
(``setsid``), its parent (a double fork) and its environment (``execve`` with
none), and then nothing ties it to the app: not ``killpg``, not a descendants
snapshot, not the ``unique_id`` scan of :mod:`corral.kill`. It cannot leave
its cgroup, short of writing to the cgroup tree itself.

Where the daemon can make cgroups (cgroup v2 mounted and the daemon's own
cgroup writable: root, or a delegated subtree), each home gets a parent cgroup
below the daemon's own, ``corral-<hash of the home's real path>``; each
process slot a cgroup in it named by its ``unique_id``; each spawned child
one in there (``<parent>/<unique_id>/<n>``), which holds the child and every
descendant from the first instruction on. A stop ends with ``cgroup.kill`` of
the slot's cgroup (frozen, then SIGKILL to every pid, on kernels before 5.14),
and a daemon started after one killed with SIGKILL ends whatever is left in
the parent it finds recorded in ``<home>/cgroup.path``.

A child is born inside: the daemon moves itself into the child's cgroup for
the fork and back right after (the two moves cost about 0.1 ms; an exec
wrapper costs an exec and cannot move a child that drops privileges, and a
``preexec_fn`` makes Popen fork instead of vfork, 2 to 6 ms). A process that
another thread of the daemon forks in that window starts in the app's cgroup
too, so an in-process daemon (``connect(no_daemon=True)``), which shares its
host's threads, does not use cgroups unless ``CORRAL_CGROUPS=1``;
``CORRAL_CGROUPS=0`` turns them off everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ENV = "CORRAL_CGROUPS"
RECORD = "cgroup.path"  # in the home: the parent cgroup of the daemon that runs (or ran) it

# one process-wide lock: while it is held the process may be inside an app's cgroup, so
# no other daemon of this process forks then, and no kill of a cgroup can reach us
_LOCK = threading.Lock()
_origin_cache: list[Path | None] = []


def wanted(in_process: bool) -> bool:
    """Whether ``CORRAL_CGROUPS`` lets this daemon use cgroups (auto: detached daemons)."""
    value = os.environ.get(ENV, "").strip().lower()
    if value in ("0", "off", "no", "false"):
        return False
    return value in ("1", "on", "yes", "true") or not in_process


def v2_mount(mountinfo: str | None = None) -> tuple[Path, str] | None:
    """The cgroup v2 mount point and the cgroup path at its root, from ``/proc/self/mountinfo``."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
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
    with _LOCK:  # never while this process visits an app's cgroup
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
    """A home's parent cgroup and the cgroups of its slots and children."""

    def __init__(self, home: Path, origin: Path) -> None:
        self.home = home
        self.origin = origin
        self.parent = origin / parent_name(home)
        self._numbers = itertools.count(1)

    @classmethod
    def open(cls, home: Path) -> Cgroups | None:
        """The home's cgroups, recorded in the home; None where they cannot be made here."""
        start = origin()
        if start is None:
            return None
        cgroups = cls(home, start)
        probe = cgroups.parent / f"probe-{os.getpid()}"
        try:
            cgroups.parent.mkdir(exist_ok=True)
            probe.mkdir(exist_ok=True)
            with cgroups.born_in(probe):  # both moves, as every spawn makes them
                pass
        except OSError:
            with contextlib.suppress(OSError):
                probe.rmdir()
            with contextlib.suppress(OSError):
                cgroups.parent.rmdir()
            return None
        probe.rmdir()
        (home / RECORD).write_text(str(cgroups.parent))
        return cgroups

    def slot(self, unique_id: str) -> Path:
        """The cgroup of a slot: every child it spawned has its cgroup in there."""
        return self.parent / unique_id

    def new_child(self, unique_id: str) -> Path:
        """A new empty cgroup for the next child of a slot."""
        path = self.slot(unique_id) / str(next(self._numbers))
        path.mkdir(parents=True)
        return path

    @contextlib.contextmanager
    def born_in(self, path: Path) -> Iterator[None]:
        """Inside, this process is in ``path``: what it forks starts there."""
        with _LOCK:
            (path / "cgroup.procs").write_text("0")
            try:
                yield
            finally:
                (self.origin / "cgroup.procs").write_text("0")

    def prune(self, path: Path) -> None:
        """Remove ``path``'s empty cgroups (a child's, once it has exited)."""
        remove_tree(path)

    def close(self) -> None:
        """Remove every empty cgroup, the parent last, and the record once it is gone."""
        if remove_tree(self.parent):
            with contextlib.suppress(OSError):
                (self.home / RECORD).unlink()


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


def forget_record(home: Path) -> None:
    with contextlib.suppress(OSError):
        (home / RECORD).unlink()
