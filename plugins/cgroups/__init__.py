"""cgroups: per-app kernel limits on memory, CPU and processes, as systemd's
``MemoryMax=``, ``CPUQuota=`` and ``TasksMax=``.

Options (per app):

- ``memory_max``: bytes, or ``512M``, ``1G`` (powers of 1024). Past it, the
  kernel's OOM killer ends the app (swap counts too where the kernel accounts it);
  its restart policy decides, and an ``oom`` event says it was the limit.
- ``cpu_max``: a percentage of one CPU, ``"50%"`` (half a core), ``"200%"`` (two).
  The app is throttled to it.
- ``pids_max``: processes and threads the app's tree may have at once; a fork
  past it fails (``EAGAIN``).

Each instance gets its own cgroups (one per controller) and enters them itself,
before the app's first instruction: the child is started through ``sh -c`` that
writes its pid into them, then execs the app (and exits 125, saying so, if it
cannot: a limit is never skipped). They are removed once the instance has exited.
This machine's kind (a hybrid mount) limits through cgroup v1, which only root may
use; where the controllers are not there, or the daemon is not root, a limit is an
error that says why, before anything starts. The memory figure in ``monit`` stays
the tree's RSS (a v1 memory cgroup counts page cache too). Stopping and killing
already go through each instance's own cgroup v2 (corral.supervisor.cgroup), so no
descendant escapes.

RPC: ``cgroups`` -> ``{"<pid>": {"name", "paths", "limits"}}``.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import corral
from corral.api import app_account
from corral.plugins.cgroups import v1

# Its hooks only touch loop state and cgroupfs files (no blocking waits).
corral_runs_on_loop = True

STATE_KEY = "cgroups.groups"
SWEEP_AFTER_S = 2.0
MIN_MEMORY = 1024 * 1024
SHOWN_KEY = "cgroup_status"
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_NEEDS = {"memory_max": "memory", "cpu_max": "cpu", "pids_max": "pids"}


def parse_cpu(value: Any) -> str:
    """``"50%"`` (a string with %), as systemd's CPUQuota=; kept as given, checked here."""
    match = _PERCENT.match(value) if isinstance(value, str) else None
    if match is None or not 0 < float(match[1]) <= 100_000:
        raise ValueError(f'give a percentage of one CPU, e.g. "50%" or "200%", got {value!r}')
    v1.cpu_files(float(match[1]))  # below 0.1%: said now, not at the spawn
    return value.strip()


def check_pids(value: int) -> int:
    if not 1 <= value <= v1.PIDS_LIMIT:
        raise ValueError(f"from 1 to {v1.PIDS_LIMIT} (the kernel's PID_MAX_LIMIT), got {value}")
    return value


def check_memory(value: int) -> int:
    if value and value < MIN_MEMORY:
        raise ValueError(f"0 (no limit) or at least 1M, got {value} bytes")
    return value


def settings_of(options: Any) -> dict[str, dict[str, str]]:
    """The cgroup files each controller gets for these options (empty: no limit); under
    ``corral runtime``, a limit this machine cannot set is the container's."""
    settings: dict[str, dict[str, str]] = {}
    if options.get("memory_max"):
        settings["memory"] = v1.memory_files(int(options["memory_max"]))
    if options.get("pids_max"):
        settings["pids"] = {"pids.max": str(int(options["pids_max"]))}
    if options.get("cpu_max"):
        settings["cpu"] = v1.cpu_files(float(str(options["cpu_max"]).strip().rstrip("%")))
    if in_container():
        return {c: files for c, files in settings.items() if v1.why_not(c) is None}
    return settings


def in_container() -> bool:
    """Under ``corral runtime`` (it sets CORRAL_RUNTIME=1): the container's own limits,
    which ``corral export`` maps, stand for those this plugin cannot set."""
    return os.environ.get("CORRAL_RUNTIME") == "1"


_noted: set[str] = set()  # the limits said to be the container's, each said once


def _leave_to_container(option: str, why: str) -> None:
    if option not in _noted:
        _noted.add(option)
        sys.stderr.write(f"corral runtime: note: {option} is left to the container ({why})\n")


class Groups:
    """Each daemon's instance cgroups, by child pid, on its loop."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.hierarchies = v1.Hierarchies(Path(daemon.home))
        self.by_pid: dict[int, tuple[Any, dict[str, Path], dict[str, Any]]] = {}
        self.busy: list[Path] = []  # still held a process at removal: tried again later

    def before_spawn(self, app: Any, spawn: Any) -> None:
        settings = settings_of(app.options)
        if not settings:
            return
        limits = {k: app.options[k] for k in _NEEDS if _NEEDS[k] in settings}
        if "memory_max" in limits:
            limits["memory_max"] = _mib(limits["memory_max"])  # as it is usually written
        try:
            made = self.hierarchies.make(app.pm_id, settings)
            paths = list(made.values())
            account = app_account(app.options)
            if account is not None and account.uid != 0:
                for path in paths:  # the child, run as the app's user, enters by itself
                    os.chown(path / "cgroup.procs", account.uid, -1)
        except (OSError, corral.OptionError) as exc:
            # never a child without its limits: it says why and exits, its policy decides
            words = f"corral: cannot set {', '.join(limits)}: {exc}"
            spawn.argv = ["/bin/sh", "-c", 'echo "$0" >&2; exit 125', words]
            self.daemon.log.error("cgroup limits not set", name=app.name, error=str(exc))
            return
        spawn.argv = ["/bin/sh", "-c", v1.enter_script(paths), *spawn.argv]
        spawn.when_spawned(lambda pid: self._spawned(app, pid, made, limits))

    def _spawned(self, app: Any, pid: int, made: dict[str, Path], limits: dict[str, Any]) -> None:
        self.by_pid[pid] = (app, made, limits)
        shown = {"limits": limits, "paths": [str(p) for p in made.values()]}
        self.daemon.show(app, SHOWN_KEY, shown)

    def review(self) -> None:
        """The cgroups of children gone: an OOM kill is said, then they are removed."""
        for pid, (app, made, limits) in list(self.by_pid.items()):
            current = self.daemon.process(app.pm_id)
            if current is app and current.pid == pid:
                continue
            del self.by_pid[pid]
            memory = made.get("memory")
            kills = v1.oom_kills(memory) if memory is not None else 0
            if kills and current is app:
                reason = (
                    f"memory_max {limits.get('memory_max')} reached: the kernel's OOM killer "
                    f"ended pid {pid} ({kills} kill{'s' if kills > 1 else ''} in its cgroup)"
                )
                self.daemon.log.warning("oom", name=app.name, pid=pid, reason=reason)
                self.daemon.emit(app, "oom", reason=reason)
                self.daemon.show(app, SHOWN_KEY, {"limits": limits, "last_oom": reason})
            self.busy.extend(v1.remove(list(made.values())))
        if self.busy:
            self.busy = v1.remove(self.busy)

    def sweep(self) -> None:
        hierarchies = self.hierarchies
        for controller in v1.CONTROLLERS:
            if hierarchies.why_not(controller) is not None:
                continue
            parent = hierarchies.parent(controller)
            if parent.is_dir():
                v1.remove([p for p in parent.iterdir() if p.is_dir()])

    def stats(self) -> dict[str, Any]:
        return {
            str(pid): {"name": app.name, "paths": [str(p) for p in made.values()], "limits": limits}
            for pid, (app, made, limits) in sorted(self.by_pid.items())
        }


def _mib(value: Any) -> str:
    """``52428800`` -> ``50M``: the limit as it is usually written."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return str(value)
    for suffix, size in (("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if number >= size and number % size == 0:
            return f"{number // size}{suffix}"
    return f"{number} bytes"


def groups(daemon: Any) -> Groups:
    return daemon.state(STATE_KEY, lambda: Groups(daemon))


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "memory_max",
            "bytes",
            help="a kernel memory limit (cgroup; systemd's MemoryMax=): 512M, 1G; past it "
            "the OOM killer ends the app; 0: none",
            validate=check_memory,
        ),
        corral.Option(
            "cpu_max",
            "str",
            help='a CPU quota (cgroup; systemd\'s CPUQuota=): "50%" of one CPU, "200%" two',
            validate=parse_cpu,
        ),
        corral.Option(
            "pids_max",
            "int",
            help="processes and threads the app's tree may have (cgroup; systemd's TasksMax=)",
            validate=check_pids,
        ),
    ]


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    """What a daemon before this one left: its instances' cgroups, emptied by their
    exit (one that still holds a process, a child handed over by ``corral update``,
    stays until the next start). Swept a moment after the start, not during it."""
    daemon.loop.call_later(SWEEP_AFTER_S, lambda: groups(daemon).sweep())


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    held = groups(daemon)
    held.review()
    if not held.by_pid:
        v1.remove_parents(held.hierarchies)  # none of its cgroups left: the home's go too


@corral.hookimpl
def corral_validate_app(options: Any) -> None:
    """A limit this machine or this daemon cannot set is refused before anything starts."""
    for option, controller in _NEEDS.items():
        if options.get(option):
            why = v1.why_not(controller)
            if why is not None and in_container():
                _leave_to_container(option, why)
            elif why is not None:
                raise corral.OptionError(f"{option} cannot be set: {why}", field=option)


@corral.hookimpl
def corral_before_spawn(daemon: Any, app: Any, spawn: Any) -> None:
    groups(daemon).before_spawn(app, spawn)


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    held = groups(daemon)
    if held.by_pid or held.busy:
        held.review()


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"cgroups": lambda daemon: groups(daemon).stats()}
