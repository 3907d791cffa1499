"""The ``corral`` command line: PM2's commands on top of :class:`corral.Client`.

``corral ls`` (and its aliases), ``corral jlist`` and ``corral ping`` are answered
by a fast path that imports neither click nor rich (:mod:`corral.cli.quick`);
every other command is a click command of the group :mod:`corral.cli.commands`
builds, imported only then. This module keeps the entry
point, the error handling and the parsing helpers the commands share, so that
importing it stays cheap.

Every command exits 0 on success; a :class:`corral.CorralError` prints one
``error: <message>`` line on stderr and exits 1; a usage error (an unknown
command or flag, a missing argument) exits 2, as click and most CLIs do; Ctrl-C
exits 130 quietly; a reader that closes the pipe early (``corral ls | head -1``)
ends the command quietly with exit 0.
"""

from __future__ import annotations

import sys

if sys.argv[1:2] == ["runtime"]:  # before any other import
    import os
    import signal

    if os.getpid() == 1:  # a container's PID 1 has no default action for these: block them,
        # so one sent while the imports run waits for `corral runtime`'s handlers
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())

import corral
from corral.cli.base import handle_errors, print_jlist, print_ping, print_pong
from corral.cli.base import parse_env as parse_env  # the parsing helpers, where they always were
from corral.cli.base import parse_opts as parse_opts
from corral.cli.base import parse_target as parse_target
from corral.cli.base import parse_value as parse_value
from corral.cli.base import stop_exit_codes as stop_exit_codes

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the fast path
if TYPE_CHECKING:
    from typing import Any

    import click


FAST_COMMANDS = ("jlist", "ping")
# answered by corral.cli.quick when it understands the whole command line
QUICK_COMMANDS = ("jlist", "ls", "list", "status", "l", "ps")
# commands often run with no daemon up (a first start, a resurrect at boot)
EARLY_DAEMON_COMMANDS = ("start", "resurrect")
# commands that end without the interpreter's teardown (~20 ms of freeing click, rich,
# pyzmq...): their last act is a reply they waited for, and their output is flushed
QUICK_EXIT_COMMANDS = ("start",)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``corral`` console script and of ``python -m corral``."""
    args = sys.argv[1:] if argv is None else list(argv)
    if argv is None and args and args[0] in QUICK_EXIT_COMMANDS:
        try:
            _main(args)
        except SystemExit as exc:
            _exit_now(exc.code)
        _exit_now(0)
    _main(args)


def _exit_now(code: object) -> None:
    """End this process as SystemExit(code) would, skipping the interpreter's teardown."""
    import os  # deferred: only the commands that end this way

    if code is not None and not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a reader gone (`corral start app | head -1`) is no error, as handle_errors
    os._exit(code or 0)


def _main(args: list[str]) -> None:
    with handle_errors():
        if args and args[0] in QUICK_COMMANDS:
            from corral.cli import quick  # deferred: the fast path of ls and jlist only

            if quick.run(args):
                return
        if len(args) == 1 and args[0] in FAST_COMMANDS:
            _run_fast(args[0])
            return
        if args and args[0] in EARLY_DAEMON_COMMANDS and not {"-h", "--help"} & set(args):
            # deferred: the launcher (paths, homelock), only for a command that boots the daemon
            from corral.client.launcher import start_daemon_early

            if start_daemon_early() and "--json" not in args:  # it boots while click loads
                # deferred: rich and the table `start` prints at its end, loaded while
                # the daemon boots (once it has answered, they would delay the table)
                from corral.cli import table  # noqa: F401
        _one_line_warnings()
        build_cli().main(args, prog_name="corral")


def _one_line_warnings() -> None:
    """A :class:`corral.CorralWarning` (an ignored PM2 key, a path found beside the
    config file) prints as one ``warning: ...`` line on stderr, not Python's two."""
    import warnings

    shown = warnings.showwarning

    def show(message: Any, category: type, *args: Any, **kw: Any) -> None:
        if category.__name__ == "CorralWarning":
            sys.stderr.write(f"warning: {message}\n")
        else:
            shown(message, category, *args, **kw)

    warnings.showwarning = show


def _run_fast(command: str) -> None:
    from corral.rpc import fast  # deferred: the socket client of the fast commands only

    # a running daemon in a private home answers without pyzmq (~12 ms of imports);
    # jlist asked it already (corral.cli.quick)
    found = fast.result(fast.call(b"ping")) if command == "ping" else None
    if found is not None:
        import json

        print_pong(json.loads(found))
        return
    _one_line_warnings()  # a daemon of another corral: one line, as every command says it
    with corral.connect() as client:
        if command == "jlist":
            print_jlist(client)
        else:
            print_ping(client)


def build_cli() -> click.Group:
    """The click group of every core command (:func:`corral.cli.commands.build_cli`)."""
    from corral.cli import commands  # deferred: click and rich load only off the fast path

    return commands.build_cli()
