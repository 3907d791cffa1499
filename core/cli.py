"""The ``corral`` command line: PM2's commands on top of :class:`corral.Client`.

``corral jlist`` and ``corral ping`` are answered by a fast path that imports
neither click nor rich; every other command is a click command, defined in
:mod:`corral.cli_commands` and imported only then. This module keeps the entry
point, the error handling and the parsing helpers the commands share, so that
importing it stays cheap.

Every command exits 0 on success; a :class:`corral.CorralError` prints one
``error: <message>`` line on stderr and exits 1; a usage error (an unknown
command or flag, a missing argument) exits 2, as click and most CLIs do; Ctrl-C
exits 130 quietly; a reader that closes the pipe early (``corral ls | head -1``)
ends the command quietly with exit 0.
"""

from __future__ import annotations

import contextlib
import os
import sys

from .errors import shorten

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the fast path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    import click

    from .client import Client

FAST_COMMANDS = ("jlist", "ping")
# commands often run with no daemon up (a first start, a resurrect at boot)
EARLY_DAEMON_COMMANDS = ("start", "resurrect")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``corral`` console script and of ``python -m corral``."""
    args = sys.argv[1:] if argv is None else list(argv)
    with handle_errors():
        if len(args) == 1 and args[0] in FAST_COMMANDS:
            _run_fast(args[0])
            return
        if args and args[0] in EARLY_DAEMON_COMMANDS and not {"-h", "--help"} & set(args):
            from .client import start_daemon_early

            start_daemon_early()  # it boots while click and rich load here
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


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """CorralError -> one stderr line and exit 1; Ctrl-C -> exit 130; a closed pipe -> exit 0."""
    from .errors import CorralError

    try:
        yield
    except CorralError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:
        # stdout went away (`corral jlist | head`): the reader had what it wanted, so
        # the command succeeded; silence the flush at exit too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None


def _run_fast(command: str) -> None:
    from . import fastrpc

    # a running daemon in a private home answers without pyzmq (~12 ms of imports)
    found = fastrpc.result(fastrpc.call(b"list" if command == "jlist" else b"ping"))
    if found is not None and command == "jlist":
        sys.stdout.buffer.write(found + b"\n")
        sys.stdout.flush()
        return
    if found is not None:
        import json

        _print_pong(json.loads(found))
        return
    import corral

    with corral.connect() as client:
        if command == "jlist":
            print_jlist(client)
        else:
            print_ping(client)


def print_jlist(client: Client, *, indent: int | None = None) -> None:
    if indent is None:
        # the daemon's JSON goes out as it came: no decoding, no copies
        sys.stdout.buffer.write(client.jlist_json() + b"\n")
        sys.stdout.flush()
        return
    import json

    processes = json.loads(client.jlist_json())
    sys.stdout.write(json.dumps(processes, indent=indent) + "\n")


def print_ping(client: Client, *, as_json: bool = False) -> None:
    _print_pong(client.ping(), as_json=as_json)


def _print_pong(reply: dict[str, Any], *, as_json: bool = False) -> None:
    from .upgrade import _warned, mismatch

    other = mismatch(reply)
    if other is not None and not _warned:  # the fast path sets no warnings hook
        sys.stderr.write(f"warning: {other}\n")
    if as_json:
        import json

        sys.stdout.write(json.dumps(reply) + "\n")
        return
    pid, apps, home = reply.get("pid"), reply.get("apps", 0), reply.get("home")
    sys.stdout.write(f"pong (daemon pid {pid}, {apps} apps, home {home})\n")
    if reply.get("version") is not None:
        where = reply.get("install_path") or "?"
        sys.stdout.write(f"corral {reply['version']} from {where} ({reply.get('python')})\n")


def parse_target(value: str | int) -> str | int:
    """A pm_id given on the command line is a number; anything else is a name or path."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)  # int() reads any Unicode digit ("\uff15"); a pm_id is ASCII
    return value


def parse_value(text: str) -> Any:
    """``--opt`` values: true/false, JSON lists and objects, else the string (the
    option validator turns numeric strings into numbers)."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if text.strip()[:1] in ("[", "{"):
        import json

        with contextlib.suppress(ValueError, RecursionError):  # nested too deep: a string
            return json.loads(text)
    return text


def parse_opts(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    from .errors import OptionError

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--opt needs KEY=VALUE, got {shorten(pair)}", field="opt")
        options[key.strip()] = parse_value(value)
    return options


def parse_env(values: tuple[str, ...] | list[str]) -> tuple[dict[str, str], str | None]:
    """``--env KEY=VAL`` sets a variable; ``--env production`` picks PM2's ``env_production``."""
    from .errors import OptionError

    env: dict[str, str] = {}
    env_name = None
    for value in values:
        key, sep, rest = value.partition("=")
        if sep:
            env[key] = rest
        elif env_name is not None and env_name != value:
            raise OptionError(
                f"--env names one environment, got {shorten(env_name)} and {shorten(value)}",
                field="env",
            )
        else:
            env_name = value
    return env, env_name


def stop_exit_codes(text: str) -> list[Any]:
    """``"0,3"`` or ``"0 3"`` -> ``[0, 3]``; a word stays a word, for the validator to name."""
    words = text.replace(",", " ").split()
    return [int(w) if w.lstrip("-").isdigit() else w for w in words]


def build_cli() -> click.Group:
    """The click group of every core command (:func:`corral.cli_commands.build_cli`)."""
    from . import cli_commands

    return cli_commands.build_cli()
