"""Config files of other process managers, read as corral apps: supervisord and circus.

A supervisord ``.conf`` (``[program:x]`` sections) or a circus ``.ini``
(``[watcher:x]`` sections) is recognised by its content, whatever its name
(:func:`ini_kind`), and read into the raw app dicts an ecosystem file would
hold (:func:`read_apps`). Whatever it says that corral has no equivalent for is
listed, in one :class:`corral.CorralWarning` per file, never dropped silently;
a bad value is one :class:`ConfigError` naming the section and the key, and
then nothing starts. ``corral import FILE`` prints the equivalent ecosystem
file (:mod:`corral.options.imports.ecosystem`).
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import stat
import warnings
from pathlib import Path
from typing import Any

from corral.errors import ConfigError, CorralWarning

MAX_BYTES = 16 << 20  # a config file read whole is at most this big
SNIFF_BYTES = 64 * 1024  # a supervisord.conf is a few KB: its sections show in the first 64 KB
_HEADER = re.compile(r"^\[([^\]\n]+)\]\s*$")
_SUPERVISOR = re.compile(r"^(program|group|eventlistener|fcgi-program|rpcinterface):|^supervisord$")
_CIRCUS = re.compile(r"^(watcher|socket):|^circus$")  # not a bare [env]: many ini files have one
KINDS = {"supervisor": "supervisord", "circus": "circus"}


def ini_kind(path: str | os.PathLike) -> str | None:
    """``"supervisor"``, ``"circus"`` or None: which manager's ini file ``path`` is.

    An ini file (only comments and blank lines before its first ``[section]``)
    with a ``[program:x]`` or ``[supervisord]`` section is supervisord's; one
    with ``[watcher:x]``, ``[socket:x]`` or ``[circus]`` is circus's. A script, a
    binary or a missing file is neither.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as file:  # a fifo or a device named as a target: never read
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = file.read(SNIFF_BYTES)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    sections: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        match = _HEADER.match(stripped)
        if match:
            sections.append(match[1].strip())
        elif not sections:
            return None  # code before any section: not an ini file
    if any(_SUPERVISOR.match(name) for name in sections):
        return "supervisor"
    if any(_CIRCUS.match(name) for name in sections):
        return "circus"
    return None


def convert(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[str]]:
    """The apps of a supervisord or circus file and what was not carried over.

    Raises ConfigError when ``path`` is neither, or holds a bad value.
    """
    kind = ini_kind(path)
    if kind == "supervisor":
        from corral.options.imports.supervisor import (
            convert as convert_file,  # deferred: only for its kind of file
        )
    elif kind == "circus":
        from corral.options.imports.circus import (
            convert as convert_file,  # deferred: only for its kind of file
        )
    else:
        raise ConfigError(
            f"{path}: not a supervisord or circus config: expected a [program:x] "
            "or [watcher:x] section"
        )
    apps, notes = convert_file(Path(path))
    if not apps:
        section = "[program:x]" if kind == "supervisor" else "[watcher:x]"
        raise ConfigError(f"{path}: no apps found: the file has no {section} section")
    return apps, notes


def read_apps(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The apps of a supervisord or circus file; what has no equivalent in one warning."""
    apps, notes = convert(path)
    warn_notes(path, notes)
    return apps


def warn_notes(path: str | os.PathLike, notes: list[str]) -> None:
    """One :class:`corral.CorralWarning` line listing ``notes``, when there are any."""
    if notes:
        warnings.warn(not_carried(path, notes), CorralWarning, stacklevel=3)


def not_carried(path: str | os.PathLike, notes: list[str]) -> str:
    return f"{os.fspath(path)}: not carried over: {', '.join(notes)}"


def parse_ini(path: Path, *, keep_case: bool) -> configparser.RawConfigParser:
    """The sections of an ini file, as supervisord and circus read it: ``;`` and ``#``
    start comments (inline after a space), a repeated section extends the first.
    """
    parser = configparser.RawConfigParser(
        inline_comment_prefixes=(";", "#"), strict=False, interpolation=None
    )
    if keep_case:
        parser.optionxform = str  # type: ignore[assignment,method-assign]
    text = _read_text(path)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None)
        where = f" line {line}" if line else ""
        first = str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: {first}") from None
    return parser


def _read_text(path: Path) -> str:
    """A config file's text: a regular file of at most ``MAX_BYTES`` (an include may
    name /dev/zero, a fifo or a GiB file: an error, never a hang or all memory)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from None
    with open(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file: name a config file")
        data = file.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB: not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None


def command(text: str, where: str, *, shell: bool = False) -> dict[str, Any]:
    """``script`` and ``args`` of a command line, run as the manager runs it: the
    program itself (``exec_interpreter: none`` where corral would pick an interpreter
    by its suffix); with ``shell``, the whole line through a shell."""
    from corral.options.table import INTERPRETERS  # deferred: the option table, for this call only

    if shell:
        return {"script": text.strip()}
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} in {text!r}: close the quote") from None
    if not words:
        raise ConfigError(f"{where}: the command is empty: give the program to run")
    app: dict[str, Any] = {"script": words[0]}
    if words[1:]:
        app["args"] = words[1:]
    if Path(words[0]).suffix.lower() in INTERPRETERS:
        app["exec_interpreter"] = "none"
    return app


def boolean(value: str, where: str) -> bool:
    word = value.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise ConfigError(f"{where}: {value!r} is not true or false")


def number(value: str, where: str, *, kind: type = int, minimum: float | None = None) -> Any:
    try:
        result = kind(value.strip())
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{where}: {value!r} is not {what}") from None
    if minimum is not None and result < minimum:
        raise ConfigError(f"{where}: {value!r} must be at least {minimum:g}")
    return result


def signal_name(value: str, where: str) -> str:
    """``TERM``, ``SIGTERM`` or ``15`` as ``SIGTERM``."""
    import signal

    text = value.strip().upper()
    if text.isdigit():
        try:
            return signal.Signals(int(text)).name
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a signal number") from None
    name = text if text.startswith("SIG") else f"SIG{text}"
    if not hasattr(signal.Signals, name):
        raise ConfigError(f"{where}: {value!r} is not a signal name (TERM, INT, HUP, QUIT...)")
    return name


def collapse(apps: list[dict[str, Any]], name: str) -> list[dict[str, Any]] | None:
    """One app with ``instances`` for copies that differ in nothing but their name, else None."""
    bodies = [{k: v for k, v in app.items() if k != "name"} for app in apps]
    if any(body != bodies[0] for body in bodies[1:]):
        return None
    return [{"name": name, **bodies[0], "instances": len(apps)}]


__all__ = ["KINDS", "convert", "ini_kind", "not_carried", "read_apps"]
