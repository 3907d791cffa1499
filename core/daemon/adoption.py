"""The new image's side of a handover: the children and sockets an earlier image of this
process ran, adopted as they are (corral.daemon.handover is the side that leaves).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path
from typing import Any

from corral.daemon.commands.dumps import restore
from corral.supervisor.channel import Channel
from corral.supervisor.lifecycle import ProcessState
from corral.supervisor.listen import Listener
from corral.supervisor.process import Child
from corral.supervisor.spawner import SpawnedChild, SpawnerLink
from corral.supervisor.stdin import StdinPipe


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


async def adopt(daemon: Any, handover: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """The new image takes over what the old one ran: the listening sockets, then each
    slot (from the state file) with its running child, pipes and channel."""
    for item in handover.get("listeners", []):
        sock = socket.socket(fileno=item["fd"])
        os.set_inheritable(item["fd"], False)
        ident = tuple(item["ident"]) if item.get("ident") else None
        listener = Listener(item["address"], sock, item["port"], set(item["users"]), ident=ident)
        if item["shared"]:
            sock.setblocking(False)  # as cluster_share binds it; an older corral did not
            daemon.listeners.shared[tuple(item["key"])] = listener
        else:
            daemon.listeners.by_name[item["key"]] = listener
    running = {a["pm_id"]: a for a in handover.get("apps", [])}
    spawner = None
    if handover.get("spawner"):  # the spawner the image before used: its apps' exits
        spawner = SpawnerLink.taken_over(handover["spawner"], daemon.log)
        daemon.system.close()  # the one this image started, unused yet
        daemon.system.spawner = spawner
        spawner.attach(asyncio.get_running_loop())
    for entry in entries:
        with contextlib.suppress(TypeError, ValueError):
            path, *ident = entry.get("pid_file_created") or ()
            daemon.pid_files.adopt(Path(path), tuple(int(n) for n in ident))
    quiet = [dict(e, status="stopped") if e.get("pm_id") in running else e for e in entries]
    loop = asyncio.get_running_loop()
    for proc in await restore(daemon.commands, quiet, keep_ids=True):
        app = running.get(proc.pm_id)
        if app is None:
            continue
        proc.unique_id = app["unique_id"]
        for fd in (*app["pipes"].values(), app["channel"]):
            os.set_inheritable(fd, False)
        stdin = app.get("stdin")
        if stdin is not None:
            os.set_inheritable(stdin, False)
        channel = Channel(lambda message: None)  # a fresh pair, whose daemon end is replaced
        channel.sock.close()
        channel.sock = socket.socket(fileno=app["channel"])
        channel.sock.setblocking(False)
        started = app["started"]
        child = Child(
            popen=(  # type: ignore[arg-type]
                SpawnedChild(app["pid"], spawner)
                if app.get("spawned") and spawner is not None
                else Adopted(app["pid"])
            ),
            pid=app["pid"],
            started=tuple(started) if isinstance(started, list) else started,
            exited=loop.create_future(),
            ready=loop.create_future(),
            channel=channel,
            cgroup=Path(app["cgroup"]) if app.get("cgroup") else None,
            stdin=StdinPipe.adopt(stdin, app["pid"]),  # reopened by pid when it can be
        )
        channel.on_message = lambda message, p=proc, c=child: p.slot.on_message(c, message)
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
        proc.slot.watch_exit(child)
        if proc.listen_address is not None:
            listener = daemon.listeners.by_name.get(proc.name)
            proc.listen_port = listener.port if listener is not None else proc.listen_port
        daemon.mark_dirty()
