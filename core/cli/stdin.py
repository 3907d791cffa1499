"""``corral send ID LINE...`` and ``corral attach ID``: PM2's ``send`` and ``attach``.

``send`` writes one line (and ``"\\n"``) to the stdin of process ``ID``, through
the daemon (corral.supervisor.stdin). ``attach`` prints what the process writes, as it
writes it (stdout to stdout, stderr to stderr, from the bus), and sends every
line read from its own stdin to the process. Ctrl-C or the end of its input
(Ctrl-D, or the end of a pipe) detaches; the app keeps running. At the end of
its input it first waits until the app has been quiet for ``--linger``
seconds, so ``printf 'a\\nb\\n' | corral attach 0`` prints the replies.
"""

from __future__ import annotations

import _thread
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

import click

from corral.cli.flags import json_flag, print_json
from corral.errors import CorralError, NotFoundError, StateError

if TYPE_CHECKING:
    from corral.client import Client

LINGER_MAX = 10.0  # seconds the end of input waits at most for the app's last replies
RUNNING = ("online", "launching")


def add_commands(cli: click.Group, client_factory: Callable[[], Client]) -> None:
    """``send`` and ``attach`` on ``cli``."""

    @cli.command()
    @click.argument("pm_id", metavar="ID")
    @click.argument("words", nargs=-1, required=True, metavar="LINE...")
    @json_flag
    def send(pm_id: str, words: tuple[str, ...], as_json: bool) -> None:
        """Send LINE (its words joined by spaces) and a newline to the stdin of process ID."""
        from corral.supervisor.stdin import (
            check_pm_id,  # deferred: the daemon's module (asyncio), only when used
        )

        number = check_pm_id(pm_id)  # before connecting: a bad id starts no daemon
        result = client_factory().send_line(number, " ".join(words))
        if as_json:
            print_json(result)
            return
        shown = result.get("name", "")
        click.echo(f"sent {len(result['line'])} bytes to {shown} (pm_id {result['pm_id']})")

    @cli.command()
    @click.argument("pm_id", metavar="ID")
    @click.option(
        "--linger",
        type=click.FloatRange(0, LINGER_MAX),
        default=1.0,
        show_default=True,
        help="At the end of input, seconds of quiet from the app before detaching.",
    )
    def attach(pm_id: str, linger: float) -> None:
        """Print the output of process ID and send it each line typed; Ctrl-C detaches."""
        # deferred: the daemon's module (asyncio), imported only when used
        from corral.supervisor.stdin import check_pm_id

        number = check_pm_id(pm_id)
        run_attach(client_factory(), number, linger=linger)


def run_attach(
    conn: Client,
    pm_id: int,
    *,
    linger: float = 1.0,
    lines: IO[str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> None:
    """Attach to process ``pm_id`` until ``lines`` end or Ctrl-C (see the module doc)."""
    lines = lines or sys.stdin
    out, err = out or sys.stdout, err or sys.stderr
    found = [p for p in conn.list() if p.pm_id == pm_id]
    if not found:
        raise NotFoundError(f"no process has pm_id {pm_id}; `corral ls` lists them")
    proc = found[0]
    if proc.status not in RUNNING:
        raise StateError(
            f"{proc.name} (pm_id {pm_id}) is {proc.status}, not online: start it first"
        )
    bus = conn.launch_bus(["log:out", "log:err", "corral:kill"])
    heard = _Output(pm_id, out, err)
    bus.on("*", heard.show)
    try:
        if lines.isatty():
            err.write(
                f"attached to {proc.name} (pm_id {pm_id}): lines you type go to its stdin; "
                "Ctrl-C or Ctrl-D detaches, the app keeps running\n"
            )
            err.flush()
        for line in _lines(lines):
            try:
                conn.send_line(pm_id, line.rstrip("\r\n"))
            except CorralError as exc:  # a restart in between, a full pipe: say it, go on
                err.write(f"error: {exc}\n")
                err.flush()
            heard.sent()
        heard.wait_quiet(linger)
    except KeyboardInterrupt:
        pass  # detach: the app keeps running
    finally:
        bus.close()
    if heard.daemon_gone:
        raise StateError("the daemon stopped: nothing left to attach to")


def _lines(source: IO[str]) -> Iterator[str]:
    """The lines of ``source``, each read with a bound: of a line longer than the daemon
    takes, only its first ``MAX_LINE + 1`` characters are kept (and then refused)."""
    from corral.supervisor.stdin import (
        MAX_LINE,  # deferred: the daemon's module (asyncio), imported only when used
    )

    while line := source.readline(MAX_LINE + 1):
        if len(line) > MAX_LINE and not line.endswith("\n"):
            while (rest := source.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass  # the rest of a line too long: skipped, never held
        yield line


class _Output:
    """What the bus says about one process, printed as it comes (on the bus's thread)."""

    def __init__(self, pm_id: int, out: IO[str], err: IO[str]) -> None:
        self.pm_id = pm_id
        self.streams = {"log:out": out, "log:err": err}
        self.last = time.monotonic()
        self.daemon_gone = False
        self.lock = threading.Lock()

    def sent(self) -> None:
        with self.lock:
            self.last = time.monotonic()

    def show(self, event: Any) -> None:
        if event.topic == "corral:kill":
            self.daemon_gone = True
            _thread.interrupt_main()  # the read of stdin ends with the daemon
            return
        stream = self.streams.get(event.topic)
        process: Any = event.payload.get("process") or {}
        if stream is None or process.get("pm_id") != self.pm_id:
            return
        stream.write(str(event.payload.get("data", "")))
        stream.flush()
        with self.lock:
            self.last = time.monotonic()

    def wait_quiet(self, seconds: float) -> None:
        """Return once nothing came for ``seconds`` (or after ``LINGER_MAX``)."""
        deadline = time.monotonic() + LINGER_MAX
        while not self.daemon_gone:
            with self.lock:
                left = self.last + seconds - time.monotonic()
            if left <= 0 or time.monotonic() >= deadline:
                return
            time.sleep(min(left, 0.05))
