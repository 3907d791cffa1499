"""What every ``corral`` command shares: error handling, argument parsing, printing.

Below both :mod:`corral.cli.main` (the entry point and its fast path) and the click
commands (the group :mod:`corral.cli.commands` builds), so the commands need not
import the entry point; as cheap to import as :mod:`corral.cli.main` itself (no click, no rich).
"""

from __future__ import annotations

import contextlib
import os
import sys

from corral.errors import CorralError, OptionError, shorten

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on the fast path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from corral.client import Client


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """CorralError -> one stderr line and exit 1; Ctrl-C -> exit 130; a closed pipe -> exit 0."""
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
    print_pong(client.ping(), as_json=as_json)


def print_pong(reply: dict[str, Any], *, as_json: bool = False) -> None:
    from corral.daemon import (
        upgrade,  # deferred: `corral ping`'s fast path imports it only to answer
    )

    other = upgrade.mismatch(reply)
    if other is not None and not upgrade._warned:  # the fast path sets no warnings hook
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
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--opt needs KEY=VALUE, got {shorten(pair)}", field="opt")
        options[key.strip()] = parse_value(value)
    return options


def parse_env(values: tuple[str, ...] | list[str]) -> tuple[dict[str, str], str | None]:
    """``--env KEY=VAL`` sets a variable; ``--env production`` picks PM2's ``env_production``."""
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


def daemon_running() -> bool:
    """Whether a daemon holds ``$CORRAL_HOME`` (booting, serving or stalled); none is started."""
    from corral import paths  # deferred: the fast path (`corral jlist`) never asks
    from corral.daemon.homelock import holder  # deferred: the lock's reader, off the fast path too

    return holder(paths.home()) is not None
