"""The OS calls a slot makes for its child, behind one object.

As supervisor's ``options.fork()``/``options.execve()``/``options.kill()``: a
:class:`corral.supervisor.slot.Slot` forks and execs its child, opens its pidfd and waits for
it only through ``daemon.system``, so a test can replace it on one daemon and show
what a real process cannot (no pidfds on this kernel, EMFILE at the fork, an exec
that races a stop). Signals still go through :mod:`corral.supervisor.kill`, which reaches a
whole tree by pid, group and cgroup.
"""

from __future__ import annotations

import os
import subprocess

from corral.supervisor import credentials
from corral.supervisor.spawn import SpawnSpec
from corral.supervisor.stdin import open_pipe as open_stdin_pipe


class System:
    """The real OS. Subclass it in a test and set ``daemon.system``."""

    def popen(
        self, spec: SpawnSpec, creds: credentials.Credentials | None
    ) -> tuple[subprocess.Popen, int, int, int]:
        """Execute ``spec`` in a new session with piped stdio: ``(popen, out fd, err fd,
        stdin write end)``; the stdin pipe is PM2's fork mode one (corral.supervisor.stdin).

        With ``creds`` the child runs as that account: its uid, its gid and exactly its
        supplementary groups (``extra_groups=None`` would keep the daemon's, root's).
        """
        fds: list[int] = []
        try:
            in_r, in_w = open_stdin_pipe()
            fds += [in_r, in_w]
            out_r, out_w = os.pipe()
            fds += [out_r, out_w]
            err_r, err_w = os.pipe()
            fds += [err_r, err_w]
            popen = subprocess.Popen(
                spec.argv,
                stdin=in_r,
                stdout=out_w,
                stderr=err_w,
                cwd=spec.cwd,
                env=spec.env,
                start_new_session=True,
                pass_fds=tuple(spec.pass_fds),
                user=creds.uid if creds else None,
                group=creds.gid if creds else None,
                extra_groups=list(creds.groups) if creds else None,
            )
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):  # the child's ends
            os.close(fd)
        return popen, out_r, err_r, in_w

    def pidfd_open(self, pid: int) -> int:
        """A pidfd for ``pid``, readable once it exits; AttributeError or OSError
        where this Python or kernel has none (the slot then waits in a thread)."""
        return os.pidfd_open(pid)

    def wait(self, popen: subprocess.Popen) -> int:
        """Reap ``popen``'s child (blocks until it exits): its returncode."""
        return popen.wait()
