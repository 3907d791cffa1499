"""Quoting for systemd unit files: each value written so systemd reads back what the option held.

``%`` is written ``%%`` everywhere (systemd's specifiers); in ``ExecStart=`` ``$`` is
written ``$$``; words with blanks, quotes, backslashes or control characters are
double-quoted with C escapes. What no unit line can hold (a newline in a path or a
user name) is refused, naming the field.
"""

from __future__ import annotations

import re

from corral import OptionError

# a word of ExecStart= that needs no quotes
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")


def _c_escape(text: str) -> str:
    """``text`` inside double quotes, C-escaped as systemd unescapes it (the file reader
    refuses a NUL byte, which no unit can hold)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def exec_word(word: str) -> str:
    """One word of ``ExecStart=``: ``%`` and ``$`` doubled (systemd expands both there),
    quoted when it holds anything but plain characters."""
    word = word.replace("%", "%%").replace("$", "$$")
    return word if _PLAIN_WORD.match(word) else _c_escape(word)


def env_assignment(name: str, value: str) -> str:
    """One ``Environment=`` word: quoted, ``%`` doubled; ``$`` is literal there."""
    return _c_escape(f"{name}={value}".replace("%", "%%"))


def plain_value(value: str, what: str) -> str:
    """A value systemd takes to the end of the line (a path, a description): ``%``
    doubled; a line break, or an end systemd would strip, is refused naming ``what``."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip():
        raise OptionError(
            f"{what} {value!r} has a control character or blanks at an end, which a "
            "unit file cannot hold: rename it",
            field=what,
        )
    if value.endswith("\\"):
        raise OptionError(
            f"{what} {value!r} ends in a backslash, which a unit file reads as a "
            "line continuation: rename it",
            field=what,
        )
    return value.replace("%", "%%")


def description(text: str) -> str:
    """A ``Description=``: control characters and backslashes shown as ``?``."""
    shown = "".join("?" if ord(c) < 32 or ord(c) == 127 or c == "\\" else c for c in text)
    return shown.strip().replace("%", "%%") or "?"


def exec_start(argv: list[str]) -> str:
    """``ExecStart=``'s value; an executable systemd would read a prefix in is refused."""
    first = argv[0]
    if first[:1] in "@-:+!" or not first:
        raise OptionError(
            f"script {first!r} starts with {first[:1]!r}, which systemd reads as an "
            f"ExecStart= prefix: write it as ./{first}, or set the option interpreter",
            field="script",
        )
    return " ".join(exec_word(word) for word in argv)


def seconds(ms: int) -> str:
    """A duration in ms as systemd reads it: ``5s``, ``1600ms``."""
    ms = int(ms)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
