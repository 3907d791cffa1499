"""File operations done with an app's own rights, never with the root daemon's.

A root daemon that opened ``out_file`` or created ``pid_file`` as root would
lend its rights to whoever wrote the app's options: a config file naming
``/etc/shadow`` would get root's output appended to it. Every path an app's
options name is therefore opened (and its directories made) as the app's
account (:func:`corral.supervisor.credentials.resolve`): its uid, gid and supplementary
groups, so the kernel refuses what that user could not do itself.

How: one dedicated thread changes its own *filesystem* ids (``setfsuid``,
``setfsgid`` and the raw ``setgroups`` system call, which on Linux apply to the
calling thread only; glibc's ``setgroups`` would change every thread) around
each job, then sets them back. No other code ever runs on that thread, and the
daemon's other threads keep root's ids throughout. A job costs one thread
hand-off (see :func:`run_as`; tens of microseconds), and jobs run only when an
app is created, on ``reload_logs``/``flush`` and when a pid file must be made
again: never on the plain restart path.

On a machine where the thread trick is not available (an architecture whose
``setgroups`` number is not known here) each job runs in a forked child that
drops its ids for good and passes the descriptor back over a unix socket
(``SCM_RIGHTS``): slower (about a millisecond), equally strict.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import platform
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from corral.supervisor.credentials import Credentials

# __NR_setgroups: the 32-bit-gid call on every architecture listed.
T = TypeVar("T")

_SYS_SETGROUPS = {"x86_64": 116, "aarch64": 159, "riscv64": 159, "ppc64le": 81, "ppc64": 81}

_lock = threading.Lock()
_worker: concurrent.futures.ThreadPoolExecutor | None = None
_libc: ctypes.CDLL | None = None


def needed(creds: Credentials | None) -> bool:
    """Whether opening files for an app of ``creds`` must be done as that account."""
    if creds is None or os.geteuid() != 0:
        return False  # as the daemon: an unprivileged daemon cannot lend more than it has
    return (creds.uid, creds.gid, set(creds.groups)) != (0, os.getegid(), set(os.getgroups()))


def open_as(
    creds: Credentials | None, path: str, flags: int, mode: int = 0o644, *, parents: bool = False
) -> int:
    """``os.open(path, flags, mode)`` with the filesystem rights of ``creds`` (the
    daemon's own when not :func:`needed`); ``parents`` makes the missing directories
    first (0755, as that account too). OSError as ``os.open`` raises it."""

    def job() -> int:
        if parents:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags | os.O_CLOEXEC, mode)

    return fd_as(creds, job)


def fd_as(creds: Credentials | None, job: Callable[[], int]) -> int:
    """``job()``, which makes and returns a descriptor (a socket it binds), with the
    filesystem rights of ``creds``; OSError as the job raises it."""
    if not needed(creds):
        return job()
    assert creds is not None
    if platform.machine() not in _SYS_SETGROUPS:
        return _in_child(creds, job)
    return _thread().submit(_switched, creds, job).result()


def run_as(creds: Credentials | None, job: Callable[[], object]) -> None:
    """``job()`` for its effect (an unlink) with the filesystem rights of ``creds``;
    OSError as the job raises it (not from the forked fallback, which only runs it)."""
    if not needed(creds):
        job()
        return
    assert creds is not None
    if platform.machine() in _SYS_SETGROUPS:
        _thread().submit(_switched, creds, job).result()
        return
    _in_forked_child(creds, job)


def _in_forked_child(creds: Credentials, job: Callable[[], object]) -> None:
    """``job()`` in a forked child that dropped to ``creds`` (where the per-thread fs-id
    trick is not known); its result and errors stay in the child."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.setgroups(list(creds.groups))
            os.setgid(creds.gid)
            os.setuid(creds.uid)
            job()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def can_create(creds: Credentials | None, path: str) -> bool:
    """Whether the account of ``creds`` could create ``path``: its nearest existing
    directory is one that account may write and search (checked as that account)."""
    parent = os.path.dirname(path)
    while not os.path.lexists(parent) and parent != os.path.dirname(parent):
        parent = os.path.dirname(parent)

    def job() -> bool:
        return os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK, effective_ids=True)

    if not needed(creds):
        return job()
    assert creds is not None
    if platform.machine() not in _SYS_SETGROUPS:
        return True  # the forked helper cannot say; creating the file will
    return _thread().submit(_switched, creds, job).result()


def on_this_thread(creds: Credentials | None, job: Callable[[], T]) -> T | None:
    """``job()`` on the calling thread with the filesystem rights of ``creds`` (the
    daemon's own when not :func:`needed`). For a thread that runs nothing else meanwhile
    (logrotate's worker). Without the thread trick the job runs in a forked child that
    dropped to ``creds``, and its result is lost (None)."""
    if not needed(creds):
        return job()
    assert creds is not None
    if platform.machine() not in _SYS_SETGROUPS:
        _in_forked_child(creds, job)
        return None
    _thread()  # loads libc
    return _switched(creds, job)


# -- the thread ----------------------------------------------------------------


def _thread() -> concurrent.futures.ThreadPoolExecutor:
    global _worker, _libc
    with _lock:
        if _worker is None:
            import ctypes.util  # deferred: find_library runs ldconfig, not on the daemon's boot

            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="corral-asuser")
        return _worker


def _set_groups(groups: tuple[int, ...] | list[int]) -> None:
    assert _libc is not None
    array = (ctypes.c_uint * max(len(groups), 1))(*groups)
    number = _SYS_SETGROUPS[platform.machine()]
    if _libc.syscall(ctypes.c_long(number), ctypes.c_long(len(groups)), array) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setgroups: {os.strerror(err)}")


def _set_fs_ids(uid: int, gid: int) -> None:
    """This thread's filesystem uid and gid; OSError if the kernel kept the old ones."""
    assert _libc is not None
    _libc.setfsgid(gid)
    _libc.setfsuid(uid)
    # each returns the id in force before the call: asking again reads the one now in force
    if _libc.setfsgid(gid) != gid or _libc.setfsuid(uid) != uid:
        raise PermissionError(f"cannot take the filesystem ids {uid}:{gid}")


def _switched(creds: Credentials, job: Callable[[], T]) -> T:
    own_groups = os.getgroups()
    own = (os.geteuid(), os.getegid())
    try:
        _set_groups(creds.groups)
        _set_fs_ids(creds.uid, creds.gid)
        return job()
    finally:
        # back to the daemon's ids (always allowed: they are its effective ids), so a
        # failure halfway never leaves the next job with another account's rights
        _set_fs_ids(*own)
        _set_groups(own_groups)


# -- the fork fallback -------------------------------------------------------------


def _in_child(creds: Credentials, job: Callable[[], int]) -> int:
    """``job()`` in a forked child that dropped to ``creds`` for good; its fd comes back."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            parent.close()
            os.setgroups(list(creds.groups))
            os.setgid(creds.gid)
            os.setuid(creds.uid)
            socket.send_fds(child, [b"ok"], [job()])
        except OSError as exc:
            child.sendall(b"%d %s" % (exc.errno or 0, (exc.strerror or str(exc)).encode()))
        finally:
            os._exit(0)
    child.close()
    try:
        data, fds, _, _ = socket.recv_fds(parent, 4096, 1)
    finally:
        parent.close()
        os.waitpid(pid, 0)
    if fds:
        return fds[0]
    number, _, text = data.decode(errors="replace").partition(" ")
    raise OSError(int(number or 0), text or "the helper that opens files as the app failed")
