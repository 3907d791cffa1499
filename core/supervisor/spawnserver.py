"""The spawner: a small process of the daemon's that forks and execs every app, and
reports each app's exit, so that a daemon holding thousands of descriptors never forks.

A fork (even ``vfork``) copies the forking process's descriptor table and the child
closes every descriptor it does not pass on: about 0.5 us per descriptor the daemon
holds, 3 ms per spawn at 1,000 apps here, where the Popen floor is 1 ms. The spawner
holds a handful, so each spawn costs it the floor whatever the daemon holds; it runs
beside the daemon, on the other core.

It is started by the daemon (:class:`corral.supervisor.spawner.SpawnerLink`) with one
end of a unix stream socket as fd 3, imports nothing of corral's but this module, and
serves one request at a time, in order:

- a spawn: the JSON of the argv, env, cwd, the account and the cgroup, with the child's
  stdin, stdout and stderr and its passed descriptors attached (``SCM_RIGHTS``); the
  passed ones land in the child at the numbers the daemon gave them (its environment
  names them). The spawner enters the app's cgroup around the fork, so the app is born
  there, and returns to its own. The answer is the pid, or the error ``Popen`` raised.
- the exits of its children (``waitpid``), sent as they happen, in batches.

The apps are the spawner's children: it reaps them and the daemon learns each exit
code from it. At the end of the daemon's socket (the daemon exited or died) the spawner
exits; its apps are then reparented as the daemon's were, and a new daemon finds them
as before (:mod:`corral.daemon.recovery`). A ``corral update`` passes the socket on to
the next image of the daemon (:mod:`corral.daemon.handover`).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys

FRAME = struct.Struct("!IB")  # the JSON's length, the count of descriptors it carries
MAX_FDS = 32  # descriptors a request may carry (stdio, the channel, listening sockets)
SERVER_FD = 3  # the spawner's end of the socket, as the daemon starts it
FIRST_TARGET = 10  # passed descriptors land at or above this (below it: the spawner's own)


def send_frame(sock: socket.socket, message: object, fds: list[int] | tuple[int, ...] = ()) -> None:
    """One frame on ``sock`` (blocking): its header and JSON, with ``fds`` attached."""
    body = json.dumps(message, separators=(",", ":")).encode()
    data = FRAME.pack(len(body), len(fds)) + body
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
    sent = sock.sendmsg([data], ancillary if fds else [])
    if sent < len(data):
        sock.sendall(data[sent:])


class FrameReader:
    """The frames a stream socket brings, with the descriptors attached to each."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.fds: list[int] = []  # received, not yet handed to a frame: in order

    def receive(self, sock: socket.socket) -> bool:
        """Read what is there (one ``recvmsg``); False at the end of the stream."""
        space = socket.CMSG_SPACE(MAX_FDS * 4)
        data, ancillary, _flags, _ = sock.recvmsg(1 << 18, space)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                count = len(payload) // 4
                self.fds.extend(struct.unpack(f"{count}i", payload[: count * 4]))
        self.buffer += data
        return bool(data)

    def frames(self) -> list[tuple[object, list[int]]]:
        """The whole frames read so far, each with its descriptors."""
        done = []
        while len(self.buffer) >= FRAME.size:
            length, count = FRAME.unpack_from(self.buffer)
            if len(self.buffer) < FRAME.size + length:
                break
            body = bytes(self.buffer[FRAME.size : FRAME.size + length])
            del self.buffer[: FRAME.size + length]
            fds, self.fds = self.fds[:count], self.fds[count:]
            done.append((json.loads(body), fds))
        return done

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _above(fd: int, floor: int) -> int:
    """``fd`` moved to the lowest free number at or above ``floor``."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return moved


def _clear(fds: list[int], targets: set[int], floor: int) -> list[int]:
    """``fds``, each one that sits at a target number moved above every target."""
    return [_above(fd, floor) if fd in targets else fd for fd in fds]


def _land(passed: list[int], targets: list[int], floor: int) -> None:
    """Put each passed descriptor at its target number: first all above every target,
    so that no move overwrites a descriptor still to be moved."""
    high = [_above(fd, floor) for fd in passed]
    for fd, target in zip(high, targets, strict=True):
        os.dup2(fd, target, inheritable=False)
        os.close(fd)


def _enter(cgroup: str) -> None:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
        f.write("0")


class Spawner:
    """The spawner's state: its children (pid -> Popen) and its own cgroup."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.children: dict[int, subprocess.Popen] = {}
        self.reader = FrameReader()
        self.stranded = False  # could not leave an app's cgroup: ends after its answer

    def spawn(self, request: dict, fds: list[int]) -> dict:
        """Start one app; the answer for the daemon."""
        stdio, passed = fds[:3], fds[3:]
        targets = [int(t) for t in request.get("pass", [])]
        landed: list[int] = []
        try:
            if len(passed) != len(targets) or len(stdio) != 3:
                raise ValueError("the request's descriptors do not match its pass list")
            if any(t < FIRST_TARGET for t in targets) or len(set(targets)) != len(targets):
                raise ValueError(f"passed descriptors must be distinct, from {FIRST_TARGET}")
            if passed:
                floor, wanted = max(targets) + 1, set(targets)
                stdio = _clear(stdio, wanted, floor)
                self.reader.fds = _clear(self.reader.fds, wanted, floor)  # the next frames'
                _land(passed, targets, floor)
                passed, landed = [], targets
            popen = self._popen(request, stdio, targets)
        except Exception as exc:  # told to the daemon, which raises it there
            return {"id": request.get("id"), "error": _describe(exc)}
        finally:
            for fd in (*stdio, *passed, *landed):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.children[popen.pid] = popen
        return {"id": request.get("id"), "pid": popen.pid}

    def _popen(self, request: dict, stdio: list[int], targets: list[int]) -> subprocess.Popen:
        cgroup, own = request.get("cgroup"), request.get("own_cgroup")
        if cgroup:
            _enter(cgroup)  # born in its cgroup: what it forks at once is there too
        try:
            user = request.get("user")
            return subprocess.Popen(
                request["argv"],
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                cwd=request["cwd"],
                env=request["env"],
                start_new_session=True,
                pass_fds=tuple(targets),
                user=user[0] if user else None,
                group=user[1] if user else None,
                extra_groups=user[2] if user else None,
            )
        finally:
            if cgroup and own:
                try:
                    _enter(own)
                except OSError:  # never stay in an app's cgroup: a stop kills all in it
                    self.stranded = True  # ends once this spawn is answered

    def reap(self) -> list[list[int]]:
        """Every child that has exited: ``[pid, code]`` as Popen's returncode."""
        exits = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            popen = self.children.pop(pid, None)
            if popen is not None:
                popen.returncode = code
            exits.append([pid, code])
        return exits

    def serve(self) -> None:
        """Answer the daemon until its end of the socket closes."""
        woken_r, woken_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(woken_w, warn_on_full_buffer=False)
        poll = select.poll()
        poll.register(self.sock, select.POLLIN)
        poll.register(woken_r, select.POLLIN)
        while True:
            for fd, _event in poll.poll():
                if fd == woken_r:
                    while True:
                        try:
                            if not os.read(woken_r, 256):
                                break
                        except BlockingIOError:
                            break
                    exits = self.reap()
                    if exits:
                        send_frame(self.sock, {"exits": exits})
                    continue
                if not self.reader.receive(self.sock):
                    return
                for request, fds in self.reader.frames():
                    send_frame(self.sock, self.spawn(request, fds))  # type: ignore[arg-type]
                    if self.stranded:
                        return  # the daemon starts another spawner for the next spawn


def _describe(exc: BaseException) -> dict:
    if isinstance(exc, OSError):
        return {"errno": exc.errno, "strerror": exc.strerror, "filename": exc.filename}
    return {"message": str(exc) or type(exc).__name__}


def main() -> None:
    # what the daemon left inheritable (during a handover, every pipe it passes on) is
    # not the spawner's to hold: it would keep those pipes and sockets from ending
    os.closerange(SERVER_FD + 1, os.sysconf("SC_OPEN_MAX"))
    # caught, not ignored: a handler is reset by exec, an ignored signal would stay
    # ignored in every app (SIGINT and SIGTERM reach the daemon's whole group on ^C
    # or systemd's stop; the spawner ends with the daemon's socket instead)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, lambda *_: None)
    sock = socket.socket(fileno=SERVER_FD)
    os.set_inheritable(SERVER_FD, False)
    try:
        Spawner(sock).serve()
    except (ConnectionError, OSError):
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
