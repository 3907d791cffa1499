"""The handover in place of ``corral update``: the daemon re-executes itself.

The old image writes ``HOME/handover.json`` (each running child's pid, the
descriptors of its output pipes and channel, its readiness and cgroup; the
listening sockets), keeps those descriptors and the home's lock open across
``execve`` and becomes the daemon of the installed corral. The pid is the
same, so the children stay its children (``waitpid`` reaps them) and nothing
they hold changes; the pipe holder keeps its copies under the same keys. The
new image reads the state file for the slots and adopts the children instead
of spawning (:func:`corral.daemon.adoption.adopt`). Where it cannot (:func:`handover_blocker`), or
when the take-over fails, the apps are restarted under their pm_ids.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


HANDOVER = "handover.json"  # in the home: what the image before this one left running
LOCK_FD_ENV = "CORRAL_HANDOVER_LOCK_FD"  # daemon.lock's descriptor, kept across the exec


def handover_blocker(daemon: Any, python: str) -> str | None:
    """Why the apps cannot be handed over in place (they are restarted), or None."""
    from corral.supervisor.lifecycle import ProcessState  # deferred: see the module's end

    if not os.access(python, os.X_OK):
        return f"{python} cannot be executed"
    running = 0
    for proc in daemon.processes():
        lock = daemon.locks.get(proc.pm_id)
        if lock is not None and lock.locked():
            return f"a command is under way on {proc.name} (pm_id {proc.pm_id})"
        if proc.state in (ProcessState.STOPPED, ProcessState.ERRORED):
            continue
        if proc.state is ProcessState.WAITING_RESTART:
            continue  # no child: the next image starts it when its restart is due
        child = proc.child
        if proc.state is not ProcessState.ONLINE or child is None or proc.stop_in_progress:
            return f"{proc.name} (pm_id {proc.pm_id}) is {proc.state.value}"
        if not child.ready.done():
            return f"{proc.name} (pm_id {proc.pm_id}) is not ready yet"
        if child.channel is None or child.channel.closed or len(child.writers) != 2:
            return f"{proc.name} (pm_id {proc.pm_id}) has closed its output or channel"
        running += 1
    if len(daemon.children) != running:
        return "a reload is under way"
    return None


def exec_successor(daemon: Any, python: str, pythonpath: str | None) -> None:
    """After the old image's loop has ended: write what runs to ``HOME/handover.json``,
    keep the descriptors the next image needs open across exec, and become the daemon
    of the installed corral (same pid: the children stay ours). Never returns."""
    from corral.daemon.state import write_atomic  # deferred: see the module's end

    keep: list[int] = []
    apps = []
    for proc in daemon.processes():
        child = proc.child
        if child is None:
            continue
        pipes = {}
        for fd, (stream, writer) in child.writers.items():
            writer.flush()  # a partial line held back is written now, not lost
            pipes[stream] = fd
            keep.append(fd)
        channel = child.channel.sock.detach()
        keep.append(channel)
        stdin = child.stdin.fd if child.stdin is not None else None
        if stdin is not None:
            keep.append(stdin)  # lines queued but not yet taken by the child are dropped
        apps.append(
            {
                "pm_id": proc.pm_id,
                "unique_id": proc.unique_id,
                "pid": child.pid,
                "started": child.started,
                "pipes": pipes,
                "channel": channel,
                "stdin": stdin,
                "ready_by": child.ready_by,
                "ready_at": child.ready_at,
                "cgroup": str(child.cgroup) if child.cgroup else None,
                "state": proc.state.value,
                "spawned": type(child.popen).__name__ == "SpawnedChild",  # the spawner's child
            }
        )
    spawner = daemon.system.spawner.hand_over() if daemon.system.spawner else None
    if spawner is not None:
        keep.append(spawner["fd"])
    listeners = []
    for key, listener, shared in [
        *((name, li, False) for name, li in daemon.listeners.by_name.items()),
        *((k, li, True) for k, li in daemon.listeners.shared.items()),
    ]:
        fd = listener.sock.detach()
        keep.append(fd)
        listeners.append(
            {
                "key": list(key) if shared else key,
                "shared": shared,
                "address": listener.address,
                "fd": fd,
                "port": listener.port,
                "users": sorted(listener.users),
                "ident": listener.ident,
            }
        )
    from corral.daemon import homelock  # deferred: see the module's end

    lock_fd = homelock._held.get(str(daemon.home))
    env = dict(os.environ)
    if lock_fd is not None:
        keep.append(lock_fd)
        env[LOCK_FD_ENV] = str(lock_fd)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    else:
        env.pop("PYTHONPATH", None)
    try:
        write_atomic(
            daemon.home / HANDOVER,
            {"pid": os.getpid(), "apps": apps, "listeners": listeners, "spawner": spawner},
        )
        for fd in keep:
            os.set_inheritable(fd, True)
        os.execve(python, [python, "-m", "corral.daemon.main"], env)
    except OSError as exc:
        sys.stderr.write(f"corral daemon: cannot re-execute {python}: {exc}\n")
    # the apps still run and the state file names them: the next daemon restarts them
    os._exit(1)


def keep_lock() -> None:
    """In ``daemon_main``, before ``claim_home``: the daemon.lock an earlier image of this
    process held stays held (no second daemon can start during the exec)."""
    value = os.environ.pop(LOCK_FD_ENV, "")
    if not value.isdigit():
        return
    from corral import paths  # deferred: see the module's end
    from corral.daemon import homelock  # deferred: see the module's end

    fd = int(value)
    os.set_inheritable(fd, False)
    homelock._held[str(paths.ensure_home(paths.home()))] = fd


def read_handover(home: Path) -> dict[str, Any] | None:
    """What the image before this one handed over (and the file removed), or None."""
    import json

    path = home / HANDOVER
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    if not isinstance(payload, dict) or payload.get("pid") != os.getpid():
        return None  # another process's: its children are not ours to wait for
    return payload


def end_handed_over(handover: dict[str, Any]) -> None:
    """A take-over that failed: the children handed over are ended (SIGKILL to their
    groups) and reaped, their descriptors closed; the caller restarts the apps."""
    import signal

    for app in handover.get("apps", []):
        with contextlib.suppress(OSError):
            os.killpg(app["pid"], signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(app["pid"], signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(app["pid"], 0)
        for fd in (*app.get("pipes", {}).values(), app.get("channel"), app.get("stdin")):
            with contextlib.suppress(OSError, TypeError):
                os.close(fd)
    spawner = handover.get("spawner")
    if isinstance(spawner, dict):  # the old image's spawner, if it had one
        with contextlib.suppress(OSError, KeyError, TypeError, ValueError):
            os.close(int(spawner["fd"]))  # it exits at the end of its socket
        with contextlib.suppress(ChildProcessError, KeyError, TypeError, ValueError):
            os.waitpid(int(spawner["pid"]), 0)


# The imports inside this module's functions are deferred on purpose: daemon_main
# imports handover before claim_home(), and a second daemon must exit there having
# loaded as little as possible.
