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
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from corral.supervisor import cgroup as cgroups
from corral.supervisor import credentials
from corral.supervisor.spawn import SpawnSpec
from corral.supervisor.spawner import SpawnedChild, SpawnerLink, SpawnerLost
from corral.supervisor.stdin import open_pipe as open_stdin_pipe

# The spawner's round trip and the hop of each exit through it cost more than the daemon's
# own fork saves while the daemon holds few descriptors (a fork costs ~0.25 us more per
# descriptor held: 1.3 ms at 10, 3.1 ms at 7,000 here); from this many children on, a
# spawn in the daemon costs more than one in the spawner.
SPAWNER_FROM = 200


class System:
    """The real OS. Subclass it in a test and set ``daemon.system``."""

    spawner: SpawnerLink | None = None  # forks the apps, where the daemon started one
    own_cgroup: Path | None = None  # where the spawner returns after each spawn
    children: Callable[[], int] = staticmethod(lambda: 0)  # how many the daemon watches
    spawns_from = SPAWNER_FROM  # children from which the spawner forks the next ones
    _boot: tuple[Any, Any] | None = None  # (loop, log) to start the spawner with, when due

    def start_spawner(self, loop: Any, log: Any, cgroups: Any, children: Callable[[], int]) -> None:
        """Have a spawner fork the apps once the daemon watches :data:`SPAWNER_FROM`
        ``children()`` (``CORRAL_SPAWNER=1``: from the first; ``0``: never, as before the
        spawner; where it cannot start, likewise). It is started then, not before (a
        daemon of a few apps has no spawner process), and goes back after each spawn to
        the daemon's first cgroup, before ``cgroups`` (the home's Cgroups) moved it."""
        wanted = os.environ.get("CORRAL_SPAWNER")
        if wanted == "0":
            return
        self.children = children
        self.spawns_from = 0 if wanted == "1" else SPAWNER_FROM
        self.own_cgroup = cgroups.origin if cgroups is not None else None
        self._boot = (loop, log)

    def _link(self) -> SpawnerLink | None:
        """The spawner, started now if it is wanted and not started yet."""
        if self.spawner is None and self._boot is not None:
            loop, log = self._boot
            self._boot = None
            try:
                self.spawner = SpawnerLink.start(log)
            except OSError as exc:
                log.warning("no spawner: the daemon forks its apps itself", error=str(exc))
                return None
            self.spawner.attach(loop)
        return self.spawner

    def close(self) -> None:
        """End the spawner, if any (after the apps' stops: it tells their exits)."""
        if self.spawner is not None:
            self.spawner.close()
            self.spawner = None

    def places_in_cgroup(self, spec: SpawnSpec) -> bool:
        """Whether :meth:`popen` makes this spawn in the spawner, which puts the child in
        the cgroup it is given (else the caller forks inside it: ``Cgroups.born_in``)."""
        if self.children() < self.spawns_from:
            return False
        link = self._link()
        return link is not None and link.can_spawn(spec)

    def popen(
        self, spec: SpawnSpec, creds: credentials.Credentials | None, cgroup: Path | None = None
    ) -> tuple[subprocess.Popen, int, int, int]:
        """Execute ``spec`` in a new session with piped stdio: ``(popen, out fd, err fd,
        stdin write end)``; the stdin pipe is PM2's fork mode one (corral.supervisor.stdin).

        With ``creds`` the child runs as that account: its uid, its gid and exactly its
        supplementary groups (``extra_groups=None`` would keep the daemon's, root's).
        The spawner forks it where :meth:`places_in_cgroup`, born in ``cgroup``; else
        this process does, and ``cgroup`` (if any) is entered by the child's pid at once.
        """
        steps = self.popen_steps(spec, creds, cgroup)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def popen_steps(
        self, spec: SpawnSpec, creds: credentials.Credentials | None, cgroup: Path | None = None
    ) -> Generator[None, None, tuple[subprocess.Popen, int, int, int]]:
        """:meth:`popen` in two steps: it pauses once the spawner was asked (the caller
        may ask for the next spawn meanwhile), and finishes with the spawner's answer."""
        fds: list[int] = []
        try:
            in_r, in_w = open_stdin_pipe()
            fds += [in_r, in_w]
            out_r, out_w = os.pipe()
            fds += [out_r, out_w]
            err_r, err_w = os.pipe()
            fds += [err_r, err_w]
            popen: Any = None
            if self.places_in_cgroup(spec) and self.spawner is not None:
                link = self.spawner
                user = (creds.uid, creds.gid, list(creds.groups)) if creds else None
                try:
                    ident = link.send(spec, (in_r, out_w, err_w), user, cgroup, self.own_cgroup)
                    yield
                    popen = link.answer(ident)
                except SpawnerLost:
                    popen = None  # forked here below
            popen = popen or subprocess.Popen(
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
        if cgroup is not None and not isinstance(popen, SpawnedChild):
            cgroups.try_write(cgroup / "cgroup.procs", str(popen.pid))  # the spawner died
        return popen, out_r, err_r, in_w

    def pidfd_open(self, pid: int) -> int:
        """A pidfd for ``pid``, readable once it exits; AttributeError or OSError
        where this Python or kernel has none (the slot then waits in a thread)."""
        return os.pidfd_open(pid)

    def wait(self, popen: subprocess.Popen) -> int:
        """Reap ``popen``'s child (blocks until it exits): its returncode."""
        return popen.wait()
