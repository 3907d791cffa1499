"""The fast path of ``corral ls`` (and its aliases) and ``corral jlist``: the daemon
asked without pyzmq, the table drawn without rich, before click is imported.

:func:`run` answers a command line it fully understands (``ls``, ``list``,
``status``, ``l``, ``ps``, alone or with ``--sort FIELD``; ``jlist``) exactly as
the click command would, and returns False for anything else, or whenever the
full path could answer differently: no daemon answering in a private home (the
full path starts one, or says why not), a daemon of another corral (the full path
warns), a console rich would not colour as lsdraw does (``NO_COLOR``,
``FORCE_COLOR``, a dumb terminal), a table rich must draw
(:func:`corral.cli.lsdraw.draw` gives None). The full path then runs from the start.
"""

from __future__ import annotations

import sys

from corral.rpc import fast

LS_NAMES = frozenset({"ls", "list", "status", "l", "ps"})  # corral.cli.commands.ALIASES
PING = (b"ping", b"{}")
ROWS = (b"list", b'{"form":"rows","env":false}')
LIST = (b"list", b"{}")


def run(args: list[str]) -> bool:
    """Answer ``corral ARGS`` here and return True, or return False (nothing printed)."""
    if args == ["jlist"]:
        return _jlist()
    if not args or args[0] not in LS_NAMES:
        return False
    sort = _sort_flag(args[1:])
    if sort is False:
        return False
    return _ls(sort or None)


def _sort_flag(rest: list[str]) -> str | bool | None:
    """``--sort FIELD`` / ``--sort=FIELD`` -> FIELD; no flag -> None; else False."""
    if not rest:
        return None
    if len(rest) == 2 and rest[0] == "--sort":
        value = rest[1]
    elif len(rest) == 1 and rest[0].startswith("--sort="):
        value = rest[0][len("--sort=") :]
    else:
        return False
    return value if value and not value.startswith("-") else False


def _ls(sort: str | None) -> bool:
    from corral.cli import lsdraw  # deferred: only once the command line is understood

    plain = lsdraw.plain_width()  # a pipe: no colours
    if plain is not None:
        console_width, fit_width = plain
    else:  # a terminal rich colours as draw does, or else (FORCE_COLOR, NO_COLOR...) rich
        console_width = fit_width = lsdraw.colour_width()  # type: ignore[assignment]
        if console_width is None:
            return False
    lsdraw.parse_sort(sort)  # a bad --sort is refused before the daemon is asked
    # the daemon lists while this process loads the json decoder
    pending = fast.send([PING, ROWS])
    if pending is None:
        return False
    import json

    from corral.client.info import from_rows  # deferred: with the reply, as the json decoder

    replies = pending.replies()
    if replies is None or not _same_corral(fast.result(replies[0], 1)):
        return False
    found = fast.result(replies[1], 2)
    if found is None:
        return False
    infos = from_rows(json.loads(found), None)  # the table reads no env: nothing to fetch
    if not infos:
        from corral.cli.words import EMPTY_HINT  # deferred: the rare empty list

        if plain is None or len(EMPTY_HINT) > console_width:
            return False  # rich wraps it, or styles a terminal
        text: str | None = EMPTY_HINT + "\n"
    else:
        text = lsdraw.draw(infos, console_width, fit_width, colour=plain is None, sort=sort)
        if text is None:
            return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True


def _jlist() -> bool:
    replies = fast.exchange([PING, LIST])
    if replies is None or not _same_corral(fast.result(replies[0], 1)):
        return False
    found = fast.result(replies[1], 2)
    if found is None:
        return False
    sys.stdout.buffer.write(found + b"\n")
    sys.stdout.flush()
    return True


def _same_corral(pong: bytes | None) -> bool:
    """Whether the daemon's ``ping`` reply names this corral: the full path warns
    about any other (:func:`corral.daemon.upgrade.mismatch`), or a daemon too old to say."""
    if pong is None:
        return False
    import os

    import corral  # deferred: the version and install path, once a daemon answered

    theirs = [_string(pong, b"version"), _string(pong, b"install_path")]
    if False in theirs:  # an escaped string, another encoding: read it as JSON
        import json

        reply = json.loads(pong)
        theirs = [reply.get("version"), reply.get("install_path")]
    if None in theirs:
        return True  # mismatch() is None: no warning
    mine = os.path.realpath(os.path.dirname(corral.__file__))
    return theirs == [corral.__version__, mine]


def _string(reply: bytes, key: bytes) -> str | bool | None:
    """The string value of ``key`` in a flat JSON object, as the daemon encodes it
    (``"key":"value"``), without the json module (re and enum: ~3 ms of ``jlist``);
    None if it is missing or null, False if it needs a JSON decoder to read."""
    start = reply.find(b'"%s":' % key)
    if start < 0:
        return None
    value = reply[start + len(key) + 3 :]
    if value.startswith(b"null"):
        return None
    end = value.find(b'"', 1)
    if not value.startswith(b'"') or end < 0 or b"\\" in value[:end]:
        return False
    return value[1:end].decode()
