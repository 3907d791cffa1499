"""PID 1 in a container: reap every zombie, pass the signals on, exit as the manager did.

As PID 1, ``corral runtime`` forks before anything else: the parent stays PID 1 and
does what an init does (as tini and dumb-init do), the child is the manager. The
kernel gives PID 1 every orphan of the namespace; the parent's ``os.wait()`` reaps
whatever exits, orphans and all, which the manager could not do without taking the
exit statuses its own children's waits expect. The signals a container gets
(``docker stop``'s SIGTERM, Ctrl-C's SIGINT, SIGQUIT, SIGHUP to reload, SIGUSR1/2)
are passed to the manager; PID 1 has no default action for them, so one not caught
would be lost. The parent exits with the manager's code, or 128 + its signal.

Stdlib only: after the fork the parent execs this file alone (``python -I -S``), so
PID 1 holds a bare interpreter (about 9 MiB), not a copy of the CLI's.
"""

from __future__ import annotations

import os
import signal
import sys

FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def become_init() -> None:
    """As PID 1, fork: the child returns (the manager); the parent becomes this module
    run alone (a fresh Python without site-packages: the CLI's imports, which the
    manager's writes would copy page by page, are not kept twice), reaps until the
    manager exits, then exits with its code. Anywhere else, nothing happens.

    The forwarded signals are blocked from before the fork until each side has its
    handlers: one sent in between is delivered then, never lost."""
    if os.getpid() != 1:
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)  # the CLI blocked them already
    manager = os.fork()
    if manager == 0:
        return  # they stay blocked until the manager's handlers are in place (run.Signals)
    try:  # the mask and the children survive the exec
        os.execv(sys.executable, [sys.executable, "-I", "-S", __file__, str(manager)])
    except OSError:
        serve(manager)  # no interpreter to exec: this process reaps, as it is


def serve(manager: int) -> None:
    """Pass the signals on to ``manager`` and reap until it exits; exit as it did."""
    for sig in FORWARDED:
        signal.signal(sig, lambda sig, _frame: _pass_on(manager, sig))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signal.valid_signals())
    sys.exit(reap_until(manager))


def _pass_on(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # the manager is gone: its exit is being reaped


def reap_until(manager: int) -> int:
    """Reap every child that exits; the manager's exit code once it exits (128 + n
    for a signal n, as a shell says it)."""
    while True:
        try:
            pid, status = os.wait()  # PEP 475: retried after a forwarded signal
        except ChildProcessError:
            return 1  # no child at all: the manager is gone without a status
        if pid == manager:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


if __name__ == "__main__":  # the parent of become_init, after its exec
    serve(int(sys.argv[1]))
