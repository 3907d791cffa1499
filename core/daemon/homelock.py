"""One daemon per ``CORRAL_HOME``: the home's two locks and the daemon's pid file.

``daemon.lock`` is the daemon's own: the daemon takes an exclusive lock on it
first thing (before it reads the state file or binds a socket) and holds it for
its whole life. The kernel drops it when the process ends, SIGKILL included, so
a dead daemon never blocks the next one, and a live one -- even stopped
(SIGSTOP) or stalled -- always blocks a second. The holder writes its pid into
the file. Clients ask whether it is held without taking it (``F_OFD_GETLK``), so
a client's look never makes a booting daemon fail.

``spawn.lock`` lets one client at a time start a daemon. The client hands its
descriptor to the daemon it spawns, and the daemon closes it only once it holds
``daemon.lock``: a client killed (Ctrl-C) while its daemon boots leaves the
lock held until that daemon holds the home, so the next client waits for that
daemon instead of starting a second one.

Every file here is created 0600 whatever the umask. Only the standard library
is imported: the daemon takes its lock before it imports anything heavy.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from pathlib import Path

from corral import paths
from corral.errors import CorralError, DaemonError

SPAWN_FD_ENV = "CORRAL_SPAWN_LOCK_FD"  # the spawning client's spawn.lock, in the daemon

# struct flock: l_type, l_whence, l_start, l_len, l_pid (native layout, off_t is 64-bit)
_FLOCK = struct.Struct("hhqqi")
# open-file-description locks (Linux): owned by the open file, not the process, so a
# GETLK from another thread of the holder's process sees them, and closing another
# descriptor of the file never drops them; classic POSIX locks elsewhere
_GETLK = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)
_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)

_held: dict[str, int] = {}  # home -> descriptor of daemon.lock this process holds


def spawn_lock_file(root: Path) -> Path:
    return root / "spawn.lock"


def open_private(path: Path, flags: int) -> int:
    """``path`` opened with ``flags``, created 0600 whatever the umask (and made 0600 if
    an older version left it wider); a symlink there is refused."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def _lock_request(fd: int, cmd: int, kind: int) -> int:
    """``fcntl(fd, cmd)`` for the whole file; the l_type the kernel answers."""
    request = _FLOCK.pack(kind, os.SEEK_SET, 0, 0, 0) + bytes(16)  # room for any padding
    answer = fcntl.fcntl(fd, cmd, request)
    return _FLOCK.unpack_from(answer)[0]


def _pid_in(fd: int) -> int:
    """The pid the holder wrote into daemon.lock; 0 if it has not yet."""
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def holder(root: Path) -> int | None:
    """None if no daemon holds ``root``; else its pid (0 while it has not written it).

    Looks without taking the lock, and creates nothing."""
    try:
        fd = os.open(paths.lock_file(root), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: no daemon of this version ever ran here
    try:
        if _lock_request(fd, _GETLK, fcntl.F_WRLCK) == fcntl.F_UNLCK:
            return None
        return _pid_in(fd)
    finally:
        os.close(fd)


def hold(root: Path) -> int:
    """Take ``root``'s daemon lock for this process's life, or DaemonError naming the
    daemon that holds it. Idempotent: a second call returns the descriptor held."""
    key = str(root)
    if key in _held:
        return _held[key]
    fd = open_private(paths.lock_file(root), os.O_RDWR)
    try:
        _lock_request(fd, _SETLK, fcntl.F_WRLCK)
    except OSError as exc:
        pid = _pid_in(fd)
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise DaemonError(f"cannot lock {paths.lock_file(root)}: {exc.strerror}") from None
        who = f"another daemon (pid {pid})" if pid else "another daemon"
        raise DaemonError(
            f"{who} holds CORRAL_HOME {root}: only one daemon runs per home; "
            "this one exits and changes nothing"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd
    return fd


def release(root: Path) -> None:
    """Drop ``root``'s daemon lock, if this process holds it (a daemon that stops)."""
    fd = _held.pop(str(root), None)
    if fd is not None:
        os.close(fd)


def claim_home() -> Path:
    """The detached daemon's first step: hold ``$CORRAL_HOME`` or exit with one line,
    having touched nothing; then let go of the spawning client's spawn lock. The home's
    real path, checked (:func:`corral.paths.ensure_home`)."""
    try:
        root = paths.ensure_home(paths.home())
        hold(root)
        return root
    except (CorralError, OSError) as exc:
        raise SystemExit(f"corral daemon: {exc}") from None
    finally:
        let_go_of_spawn_lock()


def let_go_of_spawn_lock() -> None:
    """Close the spawn.lock descriptor a client handed this daemon (see the module)."""
    value = os.environ.pop(SPAWN_FD_ENV, "")
    if value.isdigit():
        with contextlib.suppress(OSError):
            os.close(int(value))


def try_spawn_lock(root: Path) -> int | None:
    """A descriptor holding ``root``'s spawn lock, or None while another client holds it.

    Close it (never unlock it): a daemon it was handed to keeps it held."""
    fd = open_private(spawn_lock_file(root), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def write_pid_file(root: Path) -> None:
    """``corral.pid`` holds this process's pid: written whole (a reader never sees half
    of it) and 0600 whatever the umask."""
    target = paths.pid_file(root)
    temporary = target.with_name(target.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = open_private(temporary, os.O_WRONLY | os.O_EXCL)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)
    os.replace(temporary, target)
