"""Running a script on every host at once through the system's ``ssh``: :func:`run_all`.

Each host gets its own ``ssh ... HOST bash -s`` with the script on stdin, in a thread
of its own; its output is printed as it comes, each line prefixed with the host, and
its summary line as soon as it ends. What comes back is one :class:`HostResult` a
host. An interrupt (Ctrl-C, or SIGTERM turned into one by the CLI) stops what runs
here (``localhost``'s ``bash`` and its process group, the ``ssh`` clients), says
which hosts had not ended, and is raised again.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .script import RELEASE_MARK
from .target import Target

Printer = Callable[[str], None]

# ssh's options unless the file's ssh_options set them: a host that does not answer
# fails in 10 s, and one that stops answering mid-deploy in 60 s, not never
SSH_DEFAULTS = (
    ("ConnectTimeout", "10"),
    ("ServerAliveInterval", "15"),
    ("ServerAliveCountMax", "4"),
)
STOP_WAIT = 3.0  # seconds an interrupted host's processes get between SIGTERM and SIGKILL


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


def is_local(host: str) -> bool:
    """Whether ``host`` runs here, without ssh (PM2's ``localhost``)."""
    return host == "localhost"


def _option_name(option: str) -> str:
    """An ssh option's name, lower-cased (``ConnectTimeout=5``, ``ConnectTimeout 5``)."""
    return re.split(r"[\s=]", option.strip(), maxsplit=1)[0].lower()


def ssh_argv(target: Target, host: str) -> list[str]:
    """The command that runs ``bash -s`` on ``host``; ``localhost`` runs it here, as PM2 does."""
    if is_local(host):
        return ["bash", "-s"]
    argv = ["ssh"]
    if target.port:
        argv += ["-p", str(target.port)]
    if target.key:
        argv += ["-i", os.path.expanduser(target.key)]
    for option in target.ssh_options:
        argv += ["-o", option]
    given = {_option_name(option) for option in target.ssh_options}
    for name, value in SSH_DEFAULTS:
        if name.lower() not in given:
            argv += ["-o", f"{name}={value}"]
    argv.append(f"{target.user}@{host}" if target.user else host)
    argv += ["bash", "-s"]
    return argv


def run_host(
    target: Target,
    host: str,
    script: str,
    say: Printer,
    started: Callable[[subprocess.Popen], None] | None = None,
) -> HostResult:
    """Run ``script`` on ``host``, printing its lines through ``say`` as they come.

    ``localhost``'s bash leads a process group of its own, so that an interrupt can
    stop its hooks too; ``started`` gets the process as soon as it runs."""
    argv = ssh_argv(target, host)
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            # not ssh: it asks for passwords and host keys on the terminal
            start_new_session=is_local(host),
        )
    except OSError as exc:
        return HostResult(host, False, None, f"cannot run {argv[0]}: {exc.strerror or exc}")
    if started is not None:
        started(process)
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
    return HostResult(host, False, None, _why(argv[0], status, last))


def _why(program: str, status: int, last: str | None) -> str:
    """Why a host failed: the last line it wrote, or how its ssh (bash) ended."""
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"{program} was killed by {name}" + (f", after: {last}" if last else "")
    return last or f"{program} exited with status {status}"


def _feed(process: subprocess.Popen, script: str) -> None:
    """Write the script to ssh's stdin and close it; a host that hung up early (ssh
    failed to connect) says why on its output, not here."""
    assert process.stdin is not None
    try:
        process.stdin.write(script)
        process.stdin.close()
    except (BrokenPipeError, ValueError):  # ValueError: closed by an interrupt
        pass


class _Out:
    """``say`` for every host thread: whole lines, one at a time; a ``say`` that
    fails (stdout closed) ends the printing, never a host; ``last`` lines end it too."""

    def __init__(self, say: Printer) -> None:
        self.say = say
        self.lock = threading.Lock()
        self.done = False

    def __call__(self, line: str) -> None:
        with self.lock:
            self._say(line)

    def last(self, lines: list[str]) -> None:
        with self.lock:
            for line in lines:
                self._say(line)
            self.done = True

    def _say(self, line: str) -> None:
        if self.done:
            return
        try:
            self.say(line)
        except Exception:  # a closed stdout: deploying goes on, printing does not
            self.done = True


def run_all(target: Target, script: str, say: Printer = print) -> list[HostResult]:
    """Run ``script`` on every host of ``target`` in parallel; the results in host order.

    Each host's summary line goes through ``say`` as soon as it ends. On an
    interrupt (KeyboardInterrupt, raised again) the hosts still running are stopped
    here and named: over ssh, the remote side goes on (it has no tty to lose)."""
    out = _Out(say)
    ended: queue.Queue[HostResult] = queue.Queue()
    processes: dict[str, subprocess.Popen] = {}
    guard = threading.Lock()
    stopping = False

    def started(host: str, process: subprocess.Popen) -> None:
        with guard:
            processes[host] = process
            if stopping:
                _stop(host, process, signal.SIGTERM)

    def one(host: str) -> None:
        try:
            result = run_host(target, host, script, out, lambda p: started(host, p))
        except Exception as exc:  # a bug here must not lose the host's result
            result = HostResult(host, False, None, f"{type(exc).__name__}: {exc}")
        ended.put(result)

    threads = [threading.Thread(target=one, args=(h,), daemon=True) for h in target.hosts]
    results: dict[str, HostResult] = {}
    try:
        for thread in threads:
            thread.start()
        while len(results) < len(threads):
            try:
                result = ended.get(timeout=0.2)  # short: a signal's handler runs between
            except queue.Empty:
                continue
            results[result.host] = result
            out(result.summary())
    except BaseException:
        with guard:
            stopping = True
            running = {h: p for h, p in processes.items() if h not in results}
        _stop_all(running)
        out.last(_interrupted([h for h in target.hosts if h not in results]))
        raise
    return [results[host] for host in target.hosts]


def final_line(results: list[HostResult]) -> str:
    """The line after the hosts' own: ``done: 2 host(s) ok, 1 failed: web3``."""
    failed = [result.host for result in results if not result.ok]
    line = f"done: {len(results) - len(failed)} host(s) ok"
    return line + (f", {len(failed)} failed: {', '.join(failed)}" if failed else "")


def _stop(host: str, process: subprocess.Popen, sent: signal.Signals) -> None:
    """Send ``sent`` to a host's processes: localhost's whole group, ssh itself."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if is_local(host):
            os.killpg(process.pid, sent)
        else:
            process.send_signal(sent)


def _stop_all(running: dict[str, subprocess.Popen]) -> None:
    """SIGTERM, then SIGKILL what is left after STOP_WAIT; reaped either way."""
    for host, process in running.items():
        _stop(host, process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    for host, process in running.items():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _stop(host, process, signal.SIGKILL)
        if is_local(host):  # the group outlives its leader: a hook's children
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)


def _interrupted(hosts: list[str]) -> list[str]:
    """The lines an interrupt ends with: each host that had not ended, then one line."""
    lines = []
    for host in hosts:
        how = "stopped here" if is_local(host) else "ssh closed, the remote side goes on"
        lines.append(f"{host}: interrupted: {how}")
    remote = [host for host in hosts if not is_local(host)]
    if remote:
        lines.append(
            f"interrupted: {len(remote)} host(s) may still be running the deploy: "
            f"{', '.join(remote)} (over ssh with no tty, closing ssh does not stop it)"
        )
    else:
        lines.append("interrupted: nothing runs any more" if hosts else "interrupted")
    return lines


__all__ = ["HostResult", "Printer", "final_line", "is_local", "run_all", "run_host", "ssh_argv"]
