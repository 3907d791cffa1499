"""Entry of the detached daemon process: ``python -m corral.daemon.main``.

This process runs nothing but the daemon, so it keeps out ``rich``, which
structlog imports for its console renderer when installed and the daemon
never uses (about 4 MiB of RSS). A plugin that needs rich in the daemon can
set ``CORRAL_DAEMON_ALLOW_RICH=1``.

Once it holds its home, and before its own imports (asyncio, pyzmq, the plugins),
it starts the home's pipe holder (corral.supervisor.fdholder): both boot side by
side, and the daemon finds the holder listening when its first app starts,
instead of waiting on its loop for the holder's Python to start then.

While the imports run, a thread makes the home's cgroups and moves the daemon into the
first nursery (corral.supervisor.cgroup_home.begin_open): that move waits for an RCU
grace period, which then costs the start nothing. It does so only after it started the
holder itself (outside every cgroup of the home, which the next daemon may sweep).

Its imports run with the cyclic garbage collector off: they make some 20,000 objects
that live as long as the daemon, which every collection would scan again (a quarter
of the imports' CPU on a small machine); once they are done, those objects are frozen
out of the collector's sight (``gc.freeze``) and the collector runs as usual.
"""

import gc
import os
import sys

if os.environ.get("CORRAL_DAEMON_ALLOW_RICH") != "1":
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]

from corral import paths
from corral.daemon import ready
from corral.daemon.handover import keep_lock
from corral.daemon.homelock import claim_home
from corral.supervisor import cgroup, cgroup_home

HOLDER_SOCKET, HOLDER_PID = "fdholder.sock", "fdholder.pid"  # as corral.supervisor.fdholder


def start_pipe_holder(home: "os.PathLike[str] | str") -> int | None:
    """Start the pipe holder of ``home`` without waiting for it; the pid of its first
    process (which forks the holder and exits), or None when a holder already runs."""
    try:
        with open(os.path.join(home, HOLDER_PID)) as f:
            pid = int(f.read())
        os.kill(pid, 0)
        return None  # `corral update` re-executed this daemon: its holder still runs
    except (OSError, ValueError):
        pass
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        # its own session, as HolderLink.open starts it: a kill of the daemon's group misses it
        return os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "corral.supervisor.fdholder", os.fspath(home)],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, devnull, fd) for fd in (0, 1, 2)],
            setsid=True,
        )
    except OSError:
        return None  # the daemon starts one itself when it opens its link
    finally:
        os.close(devnull)


def let_idle_holder_go(home: "os.PathLike[str] | str", timeout: float = 1.0) -> None:
    """A daemon that fails at start never used the holder it started: a connection
    closed at once tells a holder that holds nothing to exit now (not in 60 s)."""
    import socket  # deferred: only a failed start comes here
    import time  # deferred: as above

    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.connect(os.path.join(home, HOLDER_SOCKET))
            return
        except OSError:
            if time.monotonic() >= deadline:
                return
        finally:
            sock.close()
        time.sleep(0.01)


def _run() -> None:
    gc.disable()  # until the kernel's imports are done
    ready.take()  # the pipe its starter waits on: not inherited by the holder or the apps
    keep_lock()  # after `corral update` re-executed this process: its lock is still held
    root = claim_home()  # one daemon per home: a second one exits here, before its imports
    home = paths.home()
    starter = start_pipe_holder(home)
    if starter is not None:
        import threading  # deferred: after the holder's start (asyncio imports it anyway)

        # reaped on a thread, as HolderLink.open does: the daemon shows no zombie child
        threading.Thread(target=os.waitpid, args=(starter, 0), daemon=True).start()
    if starter is not None and cgroup.wanted(in_process=False):
        # on a thread, while the imports below run; only once the holder was started
        # here: one the daemon's link had to start itself would be born in the nursery
        cgroup_home.begin_open(root)
    try:
        from corral.daemon.kernel import main  # deferred: after the holder's start

        gc.freeze()  # what the imports made is never garbage: no collection scans it again
        gc.enable()
        main()
    except BaseException:
        if starter is not None:
            let_idle_holder_go(home)
        raise


_run()  # on import too: corral.daemon_main (an older corral's update) imports this module
