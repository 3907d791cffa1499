"""The daemon's side of the spawner (:mod:`corral.supervisor.spawnserver`): a spawn sent
and answered, and every exit of the apps it forked, told to the slot that waits for it.

One link per daemon (``daemon.system.spawner``). A spawn is synchronous, as ``Popen``
is: it sends the request and reads the answer, dispatching the exits read meanwhile to
the loop. An exit arrives as a frame on the same socket, which the loop reads, so no
app holds a pidfd in the daemon. A spawner that dies is replaced at the next spawn;
the apps it had forked are watched through pidfds from then on, their exit codes lost
(they are no child of the daemon's; :data:`CODE_LOST`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corral.supervisor.spawn import SpawnSpec
from corral.supervisor.spawnserver import FIRST_TARGET, SERVER_FD, FrameReader, send_frame

CODE_LOST = 255  # the exit code of an app whose spawner died before it exited
ANSWER_TIMEOUT = 60.0  # as long as an exec may hang on a slow file system
RESTARTS = 5  # spawners a daemon starts in all before it forks its apps itself


class SpawnerLost(OSError):
    """The spawner exited or stopped answering: the spawn is made without it."""


class SpawnedChild:
    """What :class:`subprocess.Popen` gives the daemon, for an app the spawner forked:
    its exit code comes from the spawner (``SpawnerLink.watch``), never from waitpid."""

    def __init__(self, pid: int, link: SpawnerLink) -> None:
        self.pid = pid
        self.link = link
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """The exit code once the spawner told it (read from the link, blocking)."""
        while self.returncode is None:
            code = self.link.wait_exit(self.pid, timeout)
            if code is None:
                raise TimeoutError(f"pid {self.pid} has not exited")
            self.returncode = code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)


class SpawnerLink:
    """The socket to one spawner, the exits it told, and who waits for them."""

    def __init__(self, sock: socket.socket, pid: int | None, log: Any = None) -> None:
        self.sock = sock
        self.pid = pid  # the spawner's, ours to reap; None for one an earlier image started
        self.log = log
        self.reader = FrameReader()
        self.ids = itertools.count(1)
        self.watchers: dict[int, Callable[[int], None]] = {}  # pid -> called with its code
        self.exits: dict[int, int] = {}  # exits told before anyone watched them
        self.answers: dict[int, dict] = {}
        self.loop: Any = None
        self.alive = True
        self.started = 1

    @classmethod
    def start(cls, log: Any = None) -> SpawnerLink:
        """Start a spawner (it boots beside the caller: a spawn sent meanwhile waits)."""
        return cls(*_start_server(), log)

    def attach(self, loop: Any) -> None:
        """Have ``loop`` read the exits between spawns."""
        self.loop = loop
        if self.alive:
            loop.add_reader(self.sock.fileno(), self._on_readable)

    # -- spawns ------------------------------------------------------------

    def can_spawn(self, spec: SpawnSpec) -> bool:
        """Whether the spawner can make this spawn (its passed descriptors land at their
        numbers in the child, which must be above the spawner's own)."""
        return all(fd >= FIRST_TARGET for fd in spec.pass_fds) and self._ready()

    def _ready(self) -> bool:
        if self.alive:
            return True
        if self.started >= RESTARTS:
            return False
        with contextlib.suppress(OSError):
            self.sock, self.pid = _start_server()
            self.reader = FrameReader()
            self.alive = True
            self.started += 1
            if self.loop is not None:
                self.loop.add_reader(self.sock.fileno(), self._on_readable)
            return True
        return False

    def send(
        self,
        spec: SpawnSpec,
        stdio: tuple[int, int, int],
        user: tuple[int, int, list[int]] | None,
        cgroup: Path | None,
        own_cgroup: Path | None,
    ) -> int:
        """Ask for the spawn of ``spec``, without waiting: its ident for :meth:`answer`
        (the descriptors sent are copies: the caller closes its own once answered)."""
        ident = next(self.ids)
        request = {
            "id": ident,
            "argv": spec.argv,
            "env": spec.env,
            "cwd": spec.cwd,
            "pass": spec.pass_fds,
            "user": user,
            "cgroup": str(cgroup) if cgroup is not None else None,
            "own_cgroup": str(own_cgroup) if own_cgroup is not None else None,
        }
        try:
            send_frame(self.sock, request, [*stdio, *spec.pass_fds])
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            raise SpawnerLost(f"the spawner is gone: {exc}") from exc
        return ident

    def answer(self, ident: int) -> SpawnedChild:
        """The child of the spawn :meth:`send` asked for (read now if not yet read)."""
        try:
            if not self.alive and ident not in self.answers:
                raise ConnectionResetError("the spawner closed its socket")
            answer = self._answer(ident)
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
            raise SpawnerLost(f"the spawner is gone: {exc}") from exc
        error = answer.get("error")
        if error is not None:
            raise _rebuilt(error)
        return SpawnedChild(int(answer["pid"]), self)

    def _answer(self, ident: int) -> dict:
        self.sock.settimeout(ANSWER_TIMEOUT)
        try:
            while ident not in self.answers:
                self._read()
        finally:
            self.sock.setblocking(False)
        return self.answers.pop(ident)

    def _read(self) -> None:
        if not self.reader.receive(self.sock):
            raise ConnectionResetError("the spawner closed its socket")
        for message, fds in self.reader.frames():
            for fd in fds:  # the spawner sends none: never keep one
                os.close(fd)
            if not isinstance(message, dict):
                continue
            if "exits" in message:
                for pid, code in message["exits"]:
                    self._exited(int(pid), int(code))
            elif "id" in message:
                self.answers[int(message["id"])] = message

    # -- exits -------------------------------------------------------------

    def watch(self, pid: int, on_exit: Callable[[int], None]) -> None:
        """Call ``on_exit(code)`` on the loop once ``pid`` (which the spawner forked) exits."""
        if pid in self.exits:
            self.loop.call_soon(on_exit, self.exits.pop(pid))
        elif not self.alive:
            self._watch_by_pidfd(pid, on_exit)
        else:
            self.watchers[pid] = on_exit

    def wait_exit(self, pid: int, timeout: float | None) -> int | None:
        """Block until the spawner tells ``pid``'s exit (a caller that cannot wait on the
        loop); its code, or None after ``timeout``. A watcher of ``pid`` is still called."""
        watcher = self.watchers.pop(pid, None)
        self.sock.settimeout(timeout)
        try:
            while pid not in self.exits and self.alive:
                self._read()
        except TimeoutError:
            pass
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")
        finally:
            if self.alive:
                self.sock.setblocking(False)
        code = self.exits.pop(pid, None)
        if watcher is not None:
            if code is None:
                self.watch(pid, watcher)
            else:
                self.loop.call_soon(watcher, code)
        return code

    def _exited(self, pid: int, code: int) -> None:
        watcher = self.watchers.pop(pid, None)
        if watcher is None or self.loop is None:
            self.exits[pid] = code
        else:
            self.loop.call_soon(watcher, code)

    def _on_readable(self) -> None:
        try:
            self._read()
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(f"{type(exc).__name__}: {exc}")

    def _lost(self, why: str) -> None:
        """The spawner is gone: what it forked is watched by pidfd from now on."""
        if not self.alive:
            return
        if self.log is not None:
            self.log.error("the spawner is gone: the exit codes of its apps are lost", why=why)
        self.close()
        watchers, self.watchers = self.watchers, {}
        for pid, on_exit in watchers.items():
            self._watch_by_pidfd(pid, on_exit)

    def _watch_by_pidfd(self, pid: int, on_exit: Callable[[int], None]) -> None:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # already gone
            self.loop.call_soon(on_exit, CODE_LOST)
            return

        def gone() -> None:
            self.loop.remove_reader(fd)
            os.close(fd)
            on_exit(CODE_LOST)

        self.loop.add_reader(fd, gone)

    @classmethod
    def taken_over(cls, handed: dict[str, Any], log: Any = None) -> SpawnerLink:
        """The spawner an earlier image of this process handed over (:meth:`hand_over`)."""
        sock = socket.socket(fileno=int(handed["fd"]))
        os.set_inheritable(sock.fileno(), False)
        sock.setblocking(False)
        link = cls(sock, handed.get("pid"), log)
        link.exits = {int(pid): int(code) for pid, code in handed.get("exits", [])}
        return link

    def hand_over(self) -> dict[str, Any] | None:
        """What the next image of this process needs to take this spawner over (its
        socket is kept open across the exec by the caller); None if it is gone."""
        if not self.alive:
            return None
        try:
            while True:  # the exits told so far, every whole frame
                self._read()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return None
        return {"fd": self.sock.fileno(), "pid": self.pid, "exits": list(self.exits.items())}

    def close(self) -> None:
        """End the spawner (its apps, if any run on, are reparented as the daemon's were)."""
        if self.alive:
            self.alive = False
            if self.loop is not None:
                with contextlib.suppress(Exception):
                    self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.reader.close()
        if self.pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = None


def _start_server() -> tuple[socket.socket, int]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "corral.supervisor.spawnserver"],
            os.environ,
            file_actions=[
                *((os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)),
                (os.POSIX_SPAWN_DUP2, theirs.fileno(), SERVER_FD),
            ],
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
        os.close(devnull)
    ours.setblocking(False)
    return ours, pid


def _rebuilt(error: dict) -> Exception:
    """The exception the spawner's Popen raised, as this side raises it."""
    if error.get("errno") is not None:
        args = [error["errno"], error.get("strerror") or os.strerror(error["errno"])]
        if error.get("filename") is not None:
            args.append(error["filename"])
        return OSError(*args)  # FileNotFoundError, PermissionError... by errno
    return ValueError(error.get("message") or "the spawner could not start it")
