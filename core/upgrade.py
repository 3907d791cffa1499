"""Safe upgrades: which corral a daemon runs, and ``corral update``.

A daemon records at its start which corral it runs (version, the directory of
the ``corral`` package, the Python executable) and ``ping`` tells it. A client
whose own corral differs says so once, on stderr, and names the fix
(``corral update``). This module is imported by every client, so it keeps to
the standard library at the top.

``update`` brings the daemon to the code the client runs. The daemon writes
its state file (every app with its pm_id, pid, restart counts and log paths),
then leaves its children running and exits; the next daemon, started by the
client from the installed code, takes them over with the dead daemon's
recovery (``Daemon._recover_previous``): each app is restarted under its
pm_id with its counts and logs. That is PM2's ``pm2 update`` (dump, kill,
resurrect), without losing the ids or the counts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def install_path() -> str:
    """The real directory of the ``corral`` package this process runs."""
    return os.path.realpath(Path(__file__).parent)


def install_info() -> dict[str, str]:
    """``version``, ``install_path`` and ``python`` of this process's corral."""
    from . import __version__

    return {"version": __version__, "install_path": install_path(), "python": sys.executable}


def mismatch(reply: dict[str, Any]) -> str | None:
    """The warning for a daemon (its ``ping`` reply) that runs another corral than this
    process, or None when it runs this one (or is too old to say)."""
    theirs, where = reply.get("version"), reply.get("install_path")
    if theirs is None or where is None:
        return None
    mine = install_info()
    if theirs == mine["version"] and where == mine["install_path"]:
        return None
    return (
        f"the daemon runs corral {theirs} from {where}, this is corral {mine['version']} "
        f"from {mine['install_path']}: run `corral update`"
    )


_warned: set[tuple[Any, ...]] = set()


def warn_if_other(reply: dict[str, Any]) -> None:
    """Warn once per process (one CLI command) about a daemon of another corral."""
    message = mismatch(reply)
    key = (reply.get("pid"), reply.get("version"), reply.get("install_path"))
    if message is None or key in _warned:
        return
    _warned.add(key)
    import warnings

    from .client import CorralWarning

    warnings.warn(message, CorralWarning, stacklevel=3)


# -- the daemon's side -------------------------------------------------------


def leave_for_update(daemon: Any, python: str | None, pythonpath: str | None) -> dict[str, Any]:
    """``update``: stop serving, leaving every app running and in the state file; the
    next daemon (started by the client, from the installed code) takes them over."""
    from .errors import StateError

    if daemon.in_process:
        raise StateError(
            "an in-process daemon (connect(no_daemon=True)) runs its program's own code: "
            "restart the program to update it"
        )
    if daemon.leaving is not None:
        raise StateError("an update of this daemon is already under way")
    apps = [
        {"pm_id": p.pm_id, "name": p.name, "pid": p.pid, "status": p.state.value}
        for p in daemon.processes()
    ]
    python = python or sys.executable
    blocker = handover_blocker(daemon, python)
    daemon.leaving = "restart" if blocker else "exec"
    daemon.successor = (python, pythonpath)
    daemon.shutting_down = True  # from now on nothing is spawned: the next daemon does
    for proc in daemon.procs.values():
        if proc.restart_timer is not None:
            proc.restart_timer.cancel()  # its slot stays "waiting restart" in the state file
            proc.restart_timer = None
    daemon.log.info(
        "update: handing the apps over", apps=len(apps), how=daemon.leaving, why_not=blocker
    )
    daemon.request_stop()
    reply = {"pid": os.getpid(), "handover": daemon.leaving, "apps": apps, **daemon.install}
    return {**reply, "why_restarted": blocker}


# -- the client's side -------------------------------------------------------


def update_daemon(client: Any) -> dict[str, Any]:
    """:meth:`corral.Client.update`: the daemon is replaced by one of this corral."""
    from .client import _endpoint, _wait_daemon_gone, ensure_daemon
    from .errors import DaemonError
    from .rpc import SyncTransport, pid_alive

    if client._inner is not None:
        raise DaemonError("an in-process daemon runs this program's own code: nothing to update")
    before = {p.pm_id: p.pid for p in client.list()}
    request = {"python": sys.executable, "pythonpath": os.environ.get("PYTHONPATH")}
    left = client._send("update", request)
    client._transport.close()
    pid = None
    if left["handover"] == "exec":
        pid = _await_successor(client.home, left["pid"], left.get("started_at"))
    if pid is None:  # restarted, or the exec failed: this corral's daemon takes them over
        _wait_daemon_gone(left["pid"], 30.0)
        pid = ensure_daemon(client.home)
    client.daemon_pid = pid
    client._transport = SyncTransport(
        *_endpoint(client.home, None, lambda: pid_alive(client.daemon_pid))
    )
    now = client.ping()
    apps = []
    for info in client.list():  # answered once the apps are back (see Commands.dispatch)
        if info.pid is not None and before.get(info.pm_id) == info.pid and pid == left["pid"]:
            how = "kept running"
        elif info.pid is None:
            how = f"not running ({info.status})"
        else:
            how = "restarted"
        apps.append(
            {"pm_id": info.pm_id, "name": info.name, "pid": info.pid, "status": info.status}
            | {"how": how}
        )
    return {
        "handover": "exec" if pid == left["pid"] else "restart",
        "why_restarted": left.get("why_restarted"),
        "previous": {k: left.get(k) for k in ("pid", "version", "install_path", "python")},
        "daemon": {k: now.get(k) for k in ("pid", "version", "install_path", "python")},
        "apps": apps,
    }


def _await_successor(home: Path, pid: int, started_at: Any, timeout: float = 30.0) -> int | None:
    """``pid`` once its new image answers (another ``started_at``); None if it died."""
    import time

    from .errors import DaemonError
    from .paths import rpc_address, rpc_path
    from .rpc import SyncTransport, pid_alive

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        if rpc_path(home).exists():
            transport = SyncTransport(rpc_address(home), lambda: pid_alive(pid))
            try:
                if transport.call("ping", {}, timeout=1.0).get("started_at") != started_at:
                    return pid
            except DaemonError:
                pass
            finally:
                transport.close()
        time.sleep(0.02)
    return None


def summary_lines(result: dict[str, Any]) -> list[str]:
    """What ``corral update`` prints: the daemon before and after, then per app name
    ``kept running: web (4 instances)`` or ``restarted: api``."""
    old, new = result["previous"], result["daemon"]
    lines = [
        f"daemon pid {old['pid']} (corral {old['version']} from {old['install_path']}) -> "
        f"pid {new['pid']} (corral {new['version']} from {new['install_path']})"
    ]
    if result.get("why_restarted"):
        lines.append(f"no handover in place: {result['why_restarted']}")
    groups: dict[tuple[str, str], int] = {}
    for app in result["apps"]:
        key = (app["how"], app["name"])
        groups[key] = groups.get(key, 0) + 1
    for (how, name), count in groups.items():
        lines.append(f"{how}: {name}" + (f" ({count} instances)" if count > 1 else ""))
    if not result["apps"]:
        lines.append("no apps")
    return lines


# -- the handover in place: the daemon re-executes itself, its children stay ------------

HANDOVER = "handover.json"  # in the home: what the image before this one left running
LOCK_FD_ENV = "CORRAL_HANDOVER_LOCK_FD"  # daemon.lock's descriptor, kept across the exec


class Adopted:
    """What :class:`subprocess.Popen` gives the daemon, for a child an earlier image of
    this same process forked: it is still our child, so ``waitpid`` reaps it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                self.returncode = 0  # reaped elsewhere: its code is gone
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = 0
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)


def handover_blocker(daemon: Any, python: str) -> str | None:
    """Why the apps cannot be handed over in place (they are restarted), or None."""
    from .lifecycle import ProcessState

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
    from .state import write_atomic

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
        apps.append(
            {
                "pm_id": proc.pm_id,
                "unique_id": proc.unique_id,
                "pid": child.pid,
                "started": child.started,
                "pipes": pipes,
                "channel": channel,
                "ready_by": child.ready_by,
                "ready_at": child.ready_at,
                "cgroup": str(child.cgroup) if child.cgroup else None,
                "state": proc.state.value,
            }
        )
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
    from . import homelock

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
            {"pid": os.getpid(), "apps": apps, "listeners": listeners},
        )
        for fd in keep:
            os.set_inheritable(fd, True)
        os.execve(python, [python, "-m", "corral.daemon_main"], env)
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
    from . import homelock, paths

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
        with __import__("contextlib").suppress(OSError):
            path.unlink()
    if not isinstance(payload, dict) or payload.get("pid") != os.getpid():
        return None  # another process's: its children are not ours to wait for
    return payload


async def adopt(daemon: Any, handover: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """The new image takes over what the old one ran: the listening sockets, then each
    slot (from the state file) with its running child, pipes and channel."""
    import asyncio
    import socket

    from .channel import Channel
    from .lifecycle import ProcessState
    from .listen import Listener
    from .process import Child

    for item in handover.get("listeners", []):
        sock = socket.socket(fileno=item["fd"])
        os.set_inheritable(item["fd"], False)
        ident = tuple(item["ident"]) if item.get("ident") else None
        listener = Listener(item["address"], sock, item["port"], set(item["users"]), ident=ident)
        if item["shared"]:
            daemon.listeners.shared[tuple(item["key"])] = listener
        else:
            daemon.listeners.by_name[item["key"]] = listener
    running = {a["pm_id"]: a for a in handover.get("apps", [])}
    for entry in entries:
        with __import__("contextlib").suppress(TypeError, ValueError):
            path, *ident = entry.get("pid_file_created") or ()
            daemon.pid_files.adopt(Path(path), tuple(int(n) for n in ident))
    quiet = [dict(e, status="stopped") if e.get("pm_id") in running else e for e in entries]
    loop = asyncio.get_running_loop()
    for proc in await daemon.commands.restore(quiet, keep_ids=True):
        app = running.get(proc.pm_id)
        if app is None:
            continue
        proc.unique_id = app["unique_id"]
        for fd in (*app["pipes"].values(), app["channel"]):
            os.set_inheritable(fd, False)
        channel = Channel(lambda message: None)  # a fresh pair, whose daemon end is replaced
        channel.sock.close()
        channel.sock = socket.socket(fileno=app["channel"])
        channel.sock.setblocking(False)
        started = app["started"]
        child = Child(
            popen=Adopted(app["pid"]),  # type: ignore[arg-type]
            pid=app["pid"],
            started=tuple(started) if isinstance(started, list) else started,
            exited=loop.create_future(),
            ready=loop.create_future(),
            channel=channel,
            cgroup=Path(app["cgroup"]) if app.get("cgroup") else None,
        )
        channel.on_message = lambda message, p=proc, c=child: daemon._on_message(p, c, message)
        channel.start()
        child.ready_by, child.ready_at = app.get("ready_by"), app.get("ready_at")
        child.ready.set_result(child.ready_by)
        if daemon.cgroups is not None and child.cgroup is not None:
            daemon.cgroups.slots.setdefault(proc.unique_id, []).append(child.cgroup)
        proc.child = child
        proc.state = ProcessState(app["state"])
        proc.exit_code = None
        daemon.children[child.pid] = (proc, child)
        for stream, fd in app["pipes"].items():
            daemon.output.watch(child, proc, fd, stream)
        daemon._watch_exit(proc, child)
        if proc.listen_address is not None:
            listener = daemon.listeners.by_name.get(proc.name)
            proc.listen_port = listener.port if listener is not None else proc.listen_port
        daemon.mark_dirty()


def end_handed_over(handover: dict[str, Any]) -> None:
    """A take-over that failed: the children handed over are ended (SIGKILL to their
    groups) and reaped, their descriptors closed; the caller restarts the apps."""
    import contextlib
    import signal

    for app in handover.get("apps", []):
        with contextlib.suppress(OSError):
            os.killpg(app["pid"], signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(app["pid"], signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(app["pid"], 0)
        for fd in (*app.get("pipes", {}).values(), app.get("channel")):
            with contextlib.suppress(OSError, TypeError):
                os.close(fd)
