"""``corral deploy [CONFIG] ENV [COMMAND [ARGS]]``, added through ``corral_cli``.

Runs in the CLI process: the daemon is not involved. Prints each host's output as it
comes, each host's summary line as it ends, then one ``done:`` line; exits 1 when
any host failed. Ctrl-C (exit 130) and SIGTERM (exit 143) stop what runs here and
say which hosts may still be deploying. A closed stdout (``| head``) stops the
printing only: the deploy goes on and the exit status is still the deploy's.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading

import click

from .commands import deploy, split_words
from .hosts import final_line


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C's KeyboardInterrupt is."""


@click.command(
    "deploy",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("words", nargs=-1, required=True, metavar="[CONFIG] ENV [COMMAND [ARGS]]")
def deploy_command(words: tuple[str, ...]) -> None:
    """Deploy a git repository to the hosts of a config's deploy section, as `pm2 deploy`.

    CONFIG: the file (default: ecosystem.config.js, .json, ... here). COMMAND: setup,
    update (the default), revert [N], curr[ent], prev[ious], list, exec|run CMD,
    ref REF. Every host at once over ssh; one summary line a host. --force (PM2's)
    is taken and changes nothing: corral never checks local changes.
    """
    path, env_name, rest = split_words(words)
    if env_name is None:
        raise click.UsageError("give the deploy environment: corral deploy [CONFIG] ENV setup")
    main = threading.current_thread() is threading.main_thread()  # else no handler
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        results = deploy(path, env_name, rest, say=_say)
    except Terminated:
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _say(final_line(results))
    if not all(result.ok for result in results):
        sys.exit(1)


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one: the stopping goes on
    raise Terminated


_closed = False  # stdout went away: the rest is not printed


def _say(line: str) -> None:
    global _closed
    if _closed:
        return
    try:
        click.echo(line)
        sys.stdout.flush()  # a host's lines as they come, piped or not
    except OSError as exc:
        if not isinstance(exc, BrokenPipeError) and exc.errno != errno.EPIPE:
            raise
        # the reader left (`| head`): print nothing more, and let the exit's flush
        # write to /dev/null rather than fail
        _closed = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
