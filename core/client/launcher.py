"""Finding or starting the daemon of a home: one detached daemon per home, started
by the first client that finds none (see corral.daemon.homelock), waited for by the others.

The client that spawns the daemon waits on the daemon's ready pipe (corral.daemon.ready)
and wakes when the daemon serves, with no ping; the others poll the home and ping."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from corral import paths
from corral.daemon import homelock, ready
from corral.errors import CorralError, DaemonError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before the spawn
if TYPE_CHECKING:
    import subprocess
    from typing import Any

ADDRESS_ENV_NAME = "CORRAL_ADDRESS"  # a daemon elsewhere, reached by a transport plugin


def read_daemon_pid(root: Path) -> int | None:
    try:
        return int(paths.pid_file(root).read_text().strip())
    except (OSError, ValueError):
        return None


def _answers(root: Path, timeout: float) -> int | None:
    """The daemon's pid if one answers a ping in ``root``, else None."""
    from corral.daemon.upgrade import warn_if_other  # deferred: after the daemon's spawn
    from corral.rpc.wire import SyncTransport, pid_alive  # deferred: pyzmq (~13 ms), as above

    pid = read_daemon_pid(root)
    if not pid_alive(pid) or not paths.rpc_path(root).exists():
        return None
    transport = SyncTransport(paths.rpc_address(root), lambda: pid_alive(pid))
    try:
        reply = transport.call("ping", {}, timeout=timeout)
    except DaemonError:
        return None
    finally:
        transport.close()
    warn_if_other(reply)  # a daemon of another corral: once, naming `corral update`
    return int(reply["pid"])


def ensure_daemon(root: Path, plugins: list[str] | None = None, timeout: float = 15.0) -> int:
    """The pid of the daemon serving ``root``, starting one only when no daemon holds the
    home's lock (one client at a time); never beside a daemon that holds it and does not
    answer: that is a DaemonError naming its pid after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    spawn_fd: int | None = None
    proc: subprocess.Popen | None = None
    early = [p for r, p in _early if r == root]  # spawned by start_daemon_early, not waited on
    try:
        while True:
            for spawned in (*early, proc):
                if spawned is not None and _serves(spawned, deadline):
                    return spawned.pid  # it said so on its ready pipe: no ping
            early = []
            holder = homelock.holder(root)
            if holder is not None:
                pid = _answers(root, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                if pid:
                    return pid
            elif proc is not None and proc.poll() is not None:
                reason = _last_line(paths.log_file(root))
                raise DaemonError(f"the daemon exited at start: {reason}")
            elif proc is None:
                if spawn_fd is None:
                    spawn_fd = homelock.try_spawn_lock(root)  # None: another client spawns
                if spawn_fd is not None and homelock.holder(root) is None:
                    proc = _spawn_daemon(root, plugins, spawn_fd)
                    continue
            if time.monotonic() >= deadline:
                raise DaemonError(_no_answer(root, holder, proc, timeout))
            time.sleep(0.005)
    finally:
        if spawn_fd is not None:
            os.close(spawn_fd)  # closed, not unlocked: a daemon still booting keeps it held


def _no_answer(
    root: Path, holder: int | None, proc: subprocess.Popen | None, timeout: float
) -> str:
    """Why ``ensure_daemon`` gives up, with what to do."""
    if proc is not None and proc.poll() is None and holder in (None, 0, proc.pid):
        proc.kill()  # ours, and it never answered: not left to hold the home
        proc.wait()
        return f"the daemon did not answer within {timeout:g} s; see {paths.log_file(root)}"
    if holder is None:
        return (
            f"another client is starting the daemon of {root}, "
            f"which did not answer within {timeout:g} s; see {paths.log_file(root)}"
        )
    pid = holder or read_daemon_pid(root) or "?"
    return (
        f"the daemon (pid {pid}) holds CORRAL_HOME {root} but did not answer within "
        f"{timeout:g} s: it may be stopped (SIGSTOP) or stalled. No second daemon was started; "
        f"resume it with `kill -CONT {pid}`, or end it with `kill -9 {pid}` "
        "(the next daemon takes its apps over)"
    )


def start_daemon_early(home: str | os.PathLike | None = None) -> bool:
    """Start the daemon if none runs, without waiting for it: it boots while the caller
    goes on (the CLI loads click and rich meanwhile). Whether this call spawned it.

    The next ``connect()`` finds it up, or waits until it answers; a daemon that
    cannot start is met again there, and reported. Only paths and homelock (the
    standard library) are loaded before the spawn.
    """
    if home is None and os.environ.get(ADDRESS_ENV_NAME):
        return False  # connect() will drive a remote daemon
    try:
        root = paths.ensure_home(Path(home) if home else None)
        if homelock.holder(root) is not None:
            return False
        spawn_fd = homelock.try_spawn_lock(root)
    except (CorralError, OSError):
        return False
    if spawn_fd is None:
        return False  # another client starts it: connect() waits for it
    try:
        if homelock.holder(root) is None:
            _early.append((root, _spawn_daemon(root, None, spawn_fd, alone=True)))
            return True
    except (CorralError, OSError):
        pass  # connect() tries again, and says why
    finally:
        os.close(spawn_fd)  # closed, not unlocked: the booting daemon keeps it held
    return False


_early: list[tuple[Path, _Spawned]] = []  # start_daemon_early's daemons, by home
_ready_pipes: dict[int, int] = {}  # a spawned daemon's pid -> the read end of its ready pipe


class _Spawned:
    """A daemon :func:`start_daemon_early` spawned (:func:`_spawn_alone`): its pid."""

    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid


def _serves(proc: _Spawned | subprocess.Popen, deadline: float) -> bool:
    """Whether the daemon this client spawned says it serves before ``deadline``, on its
    ready pipe (once: the pipe is closed after). False if it exited first, or is late."""
    import select  # deferred: only a client that spawned a daemon waits on a pipe

    fd = _ready_pipes.pop(proc.pid, None)
    if fd is None:
        return False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if select.select([fd], [], [], left)[0]:
                return os.read(fd, 1) == ready.READY  # b"": it exited unready
    except OSError:
        return False
    finally:
        os.close(fd)


def _spawn_daemon(
    root: Path, plugins: list[str] | None, spawn_fd: int, *, alone: bool = False
) -> subprocess.Popen | _Spawned:
    """Start a detached daemon on ``root``, handing it ``spawn_fd`` (see corral.daemon.homelock).
    ``alone``: this process runs no other thread (the CLI before click): the daemon is
    spawned by :func:`_spawn_alone`, without loading subprocess first."""
    if paths.settings_file(root).exists():
        from corral.daemon import settings  # and the plugins: only for a home with settings
        from corral.hooks import load_plugins  # deferred: pluggy and the entry points, as above

        # a bad corral.yaml is told here in one line, not by a dead daemon
        settings.check(root, load_plugins(plugins))
    env = dict(os.environ, CORRAL_HOME=str(root))
    env[homelock.SPAWN_FD_ENV] = str(spawn_fd)
    read_end, write_end = os.pipe()  # the daemon writes one byte once it serves
    env[ready.READY_FD_ENV] = str(write_end)
    if plugins is not None:
        if not all(isinstance(p, str) for p in plugins):
            raise CorralError(
                "a detached daemon takes plugin names; pass objects with no_daemon=True"
            )
        env["CORRAL_PLUGINS"] = ",".join(plugins)
    # created here first, so 0600 here too (the daemon's own open would make it so, too late)
    try:
        log_fd = homelock.open_private(paths.log_file(root), os.O_WRONLY | os.O_APPEND)
        with open(log_fd, "ab") as log:
            # its own session: a Ctrl-C on this client's terminal never reaches it, and it
            # outlives this client (the next one finds it through the home's lock)
            argv = [sys.executable, "-m", "corral.daemon.main"]
            proc: subprocess.Popen | _Spawned
            if alone:
                proc = _Spawned(_spawn_alone(argv, env, root, log_fd, (spawn_fd, write_end)))
            else:
                import subprocess  # deferred: the early spawn (the CLI's) goes without it

                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    cwd=str(root),
                    start_new_session=True,
                    pass_fds=(spawn_fd, write_end),
                )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)  # the daemon's now: its exit closes the pipe
    _ready_pipes[proc.pid] = read_end
    return proc


def _spawn_alone(
    argv: list[str], env: dict[str, str], cwd: Path, log_fd: int, keep: tuple[int, ...]
) -> int:
    """``argv`` started as Popen would start the daemon (its own session, working in
    ``cwd``, stdin from /dev/null, stdout and stderr to ``log_fd``, of this process's
    descriptors only ``keep``) with ``os.posix_spawn``: no subprocess import (12 ms of a
    cold start) before it. posix_spawn cannot change directory, so this process goes to
    ``cwd`` for the call: only for a caller with no other thread."""
    actions: list[tuple[Any, ...]] = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_DUP2, log_fd, 1),
        (os.POSIX_SPAWN_DUP2, log_fd, 2),
    ]
    here = os.open(".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_CLOEXEC)
    listed = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"  # macOS
    try:
        for name in os.listdir(listed):  # the listing's own fd is closed by now
            fd = int(name)
            if fd > 2 and fd not in keep and _is_open(fd):
                actions.append((os.POSIX_SPAWN_CLOSE, fd))
        for fd in keep:
            os.set_inheritable(fd, True)
        os.chdir(cwd)
        return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)
    finally:
        os.fchdir(here)
        os.close(here)
        for fd in keep:
            os.set_inheritable(fd, False)


def _is_open(fd: int) -> bool:
    try:
        os.get_inheritable(fd)
    except OSError:
        return False
    return True


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


def _wait_gone(pid: int | None, timeout: float = 15.0) -> bool:
    """Wait until ``pid`` has exited; False if it still runs after ``timeout`` seconds."""
    from corral.rpc.wire import pid_alive  # deferred: pyzmq, as in _answers

    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid or 0, os.WNOHANG)  # reap it if we are its parent
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def wait_daemon_gone(pid: int | None, timeout: float = 15.0) -> None:
    """Return once the daemon that accepted ``kill_daemon`` has exited; DaemonError if it
    still runs ``timeout`` seconds later (an in-process daemon's pid is ours: not waited)."""
    if pid == os.getpid() or _wait_gone(pid, timeout):
        return
    raise DaemonError(
        f"the daemon (pid {pid}) accepted kill_daemon but still runs {timeout:g} s later: "
        f"it may be stalled; see corral.log, or end it with `kill -9 {pid}`"
    )
