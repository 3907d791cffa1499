"""Every app instance in a cgroup of its own, so that a stop reaches all it started.

A descendant can leave its process group (``setpgid``), its session
(``setsid``), its parent (a double fork) and its environment (``execve`` with
none), and then nothing ties it to the app: not ``killpg``, not a descendants
snapshot, not the ``unique_id`` scan of :mod:`corral.supervisor.kill`. It cannot leave
its cgroup, short of writing to the cgroup tree itself.

This module finds the cgroup v2 hierarchy and this process's place in it
(``/proc/self/mountinfo``, ``/proc/self/cgroup``), and signals, kills
(``cgroup.kill``, or freeze and SIGKILL each pid on kernels before 5.14) and
removes cgroups. :mod:`corral.supervisor.cgroup_home` lays out a home's cgroups and puts
each child in one. ``CORRAL_CGROUPS=0`` turns them off; unset, detached
daemons use them where they can be made (root, or a delegated subtree), and
an in-process daemon only with ``CORRAL_CGROUPS=1``: its host's other threads
fork too (see :mod:`corral.supervisor.cgroup_home`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

ENV = "CORRAL_CGROUPS"

# one process-wide lock, held from just before a fork until this process has left the
# child's cgroup: no other fork starts there meanwhile, and no kill of a cgroup reaches us
LOCK = threading.Lock()
_origin_cache: list[Path | None] = []
_mount_cache: list[tuple[Path, str] | None] = []
_location: list[Path] = []  # where enter() last put this process


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
        with LOCK:
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
    return "populated 1" in read_file(path / "cgroup.events")


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
    with LOCK:  # never while this process is in a child's cgroup
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
        frozen = try_write(path / "cgroup.freeze", "1")
        deadline = time.monotonic() + 0.5
        while frozen and "frozen 1" not in read_file(path / "cgroup.events"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.001)
        for pid in pids(path):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)  # a frozen process neither exits nor forks
        if frozen:
            try_write(path / "cgroup.freeze", "0")


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
    listed = [pid for pid in pids(path) if pid != os.getpid()]  # never this process
    if not hasattr(os, "pidfd_open"):  # Linux before 5.3: by pid, as the process groups
        for pid in listed:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        return listed
    held = {}
    for pid in listed:
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
    import asyncio  # deferred: this module is loaded before asyncio at a daemon's boot

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


def read_file(path: Path) -> str:
    """The text of a cgroup file ("" if it cannot be read), in raw calls: a crash
    restart reads two before it forks, and ``read_text`` takes 9 syscalls for each."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return ""
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return ""
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def try_write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
    except OSError:
        return False
    return True


def enter(path: Path) -> None:
    """Move this process into ``path`` (the caller holds the lock)."""
    (path / "cgroup.procs").write_text("0")
    _location[:] = [path]
