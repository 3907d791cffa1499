"""cgroup v1 hierarchies: where the memory, pids and cpu controllers are mounted, and one
cgroup per instance in each, below this process's own.

This kind of machine (a hybrid mount: v2 at ``/sys/fs/cgroup/unified`` with no
controllers, v1 for each controller) can only limit through v1. An instance's cgroups
are ``<mount>/<this process's cgroup>/corral-<hash of the home>/<pm_id>-<n>``; the
child enters them itself, before it execs the app (``enter_script``), so the limits
hold from the app's first instruction. v1 has no delegation: only root makes them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shlex
from pathlib import Path

CONTROLLERS = ("memory", "pids", "cpu")
CPU_PERIOD_US = 100_000
LONG_PERIOD_US = 1_000_000  # the kernel's longest CFS period
MIN_QUOTA_US = 1000  # and its shortest quota
PIDS_LIMIT = 4_194_304  # PID_MAX_LIMIT: no pids.max above it means anything
OPTIONAL_FILES = frozenset({"memory.memsw.limit_in_bytes"})


def mounts(mountinfo: str = "/proc/self/mountinfo") -> dict[str, Path]:
    """Each v1 controller of :data:`CONTROLLERS` -> where its whole hierarchy is mounted."""
    found: dict[str, Path] = {}
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if fields[dash + 1] != "cgroup" or fields[3] != "/":
            continue  # not v1, or a part of a hierarchy (a container's view)
        for option in fields[dash + 3].split(","):
            if option in CONTROLLERS and option not in found:
                found[option] = Path(fields[4])
    return found


def own_paths(proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """This process's cgroup in each v1 hierarchy: ``{"memory": "/process_api/x", ...}``."""
    paths: dict[str, str] = {}
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            if name in CONTROLLERS:
                paths[name] = path
    return paths


def v2_has(controller: str, mount: str = "/sys/fs/cgroup") -> bool:
    """Whether a cgroup v2 hierarchy offers ``controller`` (to say why v1 is asked for)."""
    for root in (Path(mount), Path(mount) / "unified"):
        with contextlib.suppress(OSError):
            if controller in (root / "cgroup.controllers").read_text().split():
                return True
    return False


def why_not(
    controller: str, found: dict[str, Path] | None = None, own: dict[str, str] | None = None
) -> str | None:
    """Why this process cannot set ``controller``'s limits, or None when it can."""
    found = mounts() if found is None else found
    own = own_paths() if own is None else own
    if controller not in found or controller not in own:
        if v2_has(controller):
            return (
                f"this machine offers the {controller} controller on cgroup v2 only, "
                "and corral sets limits through cgroup v1 so far"
            )
        return f"no cgroup {controller} controller is mounted on this machine"
    if os.geteuid() != 0:
        return "cgroup v1 has no delegation: only a daemon run as root sets limits"
    return None


class Hierarchies:
    """The home's parent cgroup in each v1 hierarchy, and the instances' cgroups in them."""

    def __init__(self, home: Path) -> None:
        import hashlib  # here: the daemon's start does not pay for it (1.3 ms)

        digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
        self.name = f"corral-{digest}"
        self.mounts = mounts()
        self.own = own_paths()
        self._numbers = itertools.count(1)

    def why_not(self, controller: str) -> str | None:
        """Why ``controller``'s limits cannot be set here, or None when they can."""
        return why_not(controller, self.mounts, self.own)

    def parent(self, controller: str) -> Path:
        return self.mounts[controller] / self.own[controller].lstrip("/") / self.name

    def make(self, pm_id: int, settings: dict[str, dict[str, str]]) -> dict[str, Path]:
        """One new cgroup per controller of ``settings`` (``{"memory": {file: value}}``),
        its files written in order; OSError (and nothing left behind) if one fails."""
        made: dict[str, Path] = {}
        number = next(self._numbers)
        try:
            for controller, files in settings.items():
                why = self.why_not(controller)
                if why is not None:
                    raise OSError(why)
                parent = self.parent(controller)
                parent.mkdir(exist_ok=True)
                path = parent / f"{os.getpid()}-{pm_id}-{number}"
                path.mkdir()
                made[controller] = path
                for name, value in files.items():
                    if name in OPTIONAL_FILES and not (path / name).exists():
                        continue  # swap not accounted here: the memory limit is the limit
                    (path / name).write_text(value)
        except OSError:
            remove(list(made.values()))
            raise
        return made


def memory_files(limit: int) -> dict[str, str]:
    """The memory limit, swap included where the kernel accounts it (memsw): a limit
    that swap could overflow would not bite."""
    return {"memory.limit_in_bytes": str(limit), "memory.memsw.limit_in_bytes": str(limit)}


def cpu_files(percent: float) -> dict[str, str]:
    """``percent`` of one CPU (``150``: one and a half) as a CFS quota per period: 100 ms
    periods, or 1 s ones below 1% (the kernel's smallest quota is 1 ms), down to 0.1%."""
    period = CPU_PERIOD_US if percent >= 1 else LONG_PERIOD_US
    quota = round(period * percent / 100)
    if quota < MIN_QUOTA_US:
        raise ValueError(f"{percent:g}% is below the smallest quota the kernel takes (0.1%)")
    return {"cpu.cfs_period_us": str(period), "cpu.cfs_quota_us": str(quota)}


def enter_script(paths: list[Path]) -> str:
    """``sh -c`` text: the shell (the child, before it execs the app) writes its pid into
    each cgroup, or exits 125 saying which it could not enter."""
    steps = [f"echo $$ > {shlex.quote(str(p / 'cgroup.procs'))}" for p in paths]
    failed = "echo 'corral: cannot enter the cgroups of its limits' >&2; exit 125"
    return " && ".join(steps) + f' || {{ {failed}; }}; exec "$0" "$@"'


def oom_kills(path: Path) -> int:
    """``oom_kill`` of a memory cgroup's ``memory.oom_control`` (0 if unknown)."""
    with contextlib.suppress(OSError, ValueError):
        for line in (path / "memory.oom_control").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    return 0


def remove_parents(hierarchies: Hierarchies) -> None:
    """The home's parent cgroups, once empty (a stopped daemon's)."""
    for controller in CONTROLLERS:
        if hierarchies.why_not(controller) is None:
            remove([hierarchies.parent(controller)])


def remove(paths: list[Path]) -> list[Path]:
    """rmdir each cgroup; the ones still holding a process (busy) are returned."""
    left = []
    for path in paths:
        try:
            path.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            left.append(path)
    return left
