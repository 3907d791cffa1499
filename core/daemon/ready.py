"""The pipe a detached daemon tells its starter on that it serves: one byte, no polling.

The client that spawns the daemon (corral.client.launcher) keeps a pipe's read end and
hands the write end to the daemon, named by ``CORRAL_READY_FD``. The daemon takes it
first thing (out of its environment, and out of what its pipe holder and its apps
inherit) and writes one byte once its socket is bound and its plugins have started:
the waiting client wakes then, instead of polling the home every few milliseconds and
pinging. A daemon that exits first closes the pipe unwritten: the client sees the end
of the file and finds out why as it did before (the daemon's log, the home's lock).
"""

from __future__ import annotations

import os

READY_FD_ENV = "CORRAL_READY_FD"
READY = b"1"

_fd: int | None = None


def take() -> None:
    """Keep the ready pipe this process was started with, if any; nothing it starts
    inherits it (not its holder, not its apps, not a successor after an update)."""
    global _fd
    value = os.environ.pop(READY_FD_ENV, None)
    if not value:
        return
    try:
        fd = int(value)
        os.set_inheritable(fd, False)
    except (ValueError, OSError):
        return  # not a descriptor of ours: nobody waits on it
    _fd = fd


def tell() -> None:
    """Tell the starter this daemon serves; once, then the pipe is closed."""
    global _fd
    fd, _fd = _fd, None
    if fd is None:
        return
    try:
        os.write(fd, READY)
    except OSError:
        pass  # the starter is gone (Ctrl-C): nobody to tell
    finally:
        os.close(fd)
