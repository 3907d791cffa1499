"""Running a script on every host at once through the system's ``ssh``: :func:`run_all`.

Each host gets its own ``ssh ... HOST bash -s`` with the script on stdin, in a thread
of its own; its output is printed as it comes, each line prefixed with the host. What
comes back is one :class:`HostResult` a host, for the summary lines.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from .script import RELEASE_MARK
from .target import Target

Printer = Callable[[str], None]


@dataclass(frozen=True)
class HostResult:
    """How one host went."""

    host: str
    ok: bool
    release: str | None  # the short commit the host is on after the command, when known
    error: str | None  # the last line it wrote, when it failed

    def summary(self) -> str:
        """``host: ok (release abc1234)`` or ``host: failed: <its last error line>``."""
        if not self.ok:
            return f"{self.host}: failed: {self.error or 'no output'}"
        return f"{self.host}: ok" + (f" (release {self.release})" if self.release else "")


def ssh_argv(target: Target, host: str) -> list[str]:
    """The command that runs ``bash -s`` on ``host``; ``localhost`` runs it here, as PM2 does."""
    if host == "localhost":
        return ["bash", "-s"]
    argv = ["ssh"]
    if target.port:
        argv += ["-p", str(target.port)]
    if target.key:
        argv += ["-i", os.path.expanduser(target.key)]
    for option in target.ssh_options:
        argv += ["-o", option]
    argv.append(f"{target.user}@{host}" if target.user else host)
    argv += ["bash", "-s"]
    return argv


def run_host(target: Target, host: str, script: str, say: Printer) -> HostResult:
    """Run ``script`` on ``host``, printing its lines through ``say`` as they come."""
    try:
        process = subprocess.Popen(
            ssh_argv(target, host),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        return HostResult(host, False, None, f"cannot run ssh: {exc.strerror or exc}")
    # fed from a thread of its own, so a script longer than a pipe cannot block on a
    # host whose output nobody reads yet
    threading.Thread(target=_feed, args=(process, script), daemon=True).start()
    release, last = None, None
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.rstrip("\n")
        if line.startswith(RELEASE_MARK + " "):
            release = line.split()[-1]
            continue
        if line.strip():
            last = line.strip().removeprefix("error: ")  # the script's fail(): "failed: <why>"
        say(f"{host} | {line}")
    status = process.wait()
    if status == 0:
        return HostResult(host, True, release, None)
    return HostResult(host, False, None, last or f"ssh exited with status {status}")


def _feed(process: subprocess.Popen, script: str) -> None:
    """Write the script to ssh's stdin and close it; a host that hung up early (ssh
    failed to connect) says why on its output, not here."""
    assert process.stdin is not None
    try:
        process.stdin.write(script)
        process.stdin.close()
    except BrokenPipeError:
        pass


def run_all(target: Target, script: str, say: Printer = print) -> list[HostResult]:
    """Run ``script`` on every host of ``target`` in parallel; the results in host order."""
    lock = threading.Lock()

    def locked(line: str) -> None:
        with lock:  # whole lines: two hosts never mix within one
            say(line)

    results: dict[str, HostResult] = {}

    def one(host: str) -> None:
        results[host] = run_host(target, host, script, locked)

    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in target.hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[host] for host in target.hosts]


__all__ = ["HostResult", "Printer", "run_all", "run_host", "ssh_argv"]
