"""The exceptions corral raises, in the client and in the daemon.

Every error crosses the RPC socket as ``{"type": <class name>, "message": ...}``
and is raised again in the client as the same class, so callers can catch
``corral.OptionError`` whether the option was checked locally or in the daemon.
"""

from __future__ import annotations

ECHO_LIMIT = 200  # characters of a user's input an error message repeats


def shorten(value: object, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters: ``'xxx...' ... (N chars)``.

    Error messages echo what they were given; a megabyte of it helps nobody.
    """
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else len(text)
    return f"{text[:limit]}... ({size} chars)"


class CorralError(Exception):
    """Base class of every error corral raises on purpose."""


class OptionError(CorralError, ValueError):
    """An app option is unknown, of the wrong type, or out of range."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConfigError(CorralError):
    """A config file cannot be read or parsed."""


class NotFoundError(CorralError, LookupError):
    """A target (name, pm_id, namespace, script) matches no process."""


class ScriptError(CorralError):
    """The script or its interpreter cannot be found or executed."""


class DaemonError(CorralError):
    """The daemon cannot be reached, started, or died during a call."""


class ProtocolError(CorralError):
    """An RPC frame is malformed or names no known command."""


class PluginError(CorralError):
    """A plugin cannot be loaded, or an option needs a plugin that is not loaded."""


class StateError(CorralError):
    """The request is valid but the current state refuses it (e.g. an empty dump)."""


class CorralWarning(UserWarning):
    """An option corral accepted but will not use (a PM2-only key, say)."""


_BY_NAME = {
    cls.__name__: cls
    for cls in (
        CorralError,
        OptionError,
        ConfigError,
        NotFoundError,
        ScriptError,
        DaemonError,
        ProtocolError,
        PluginError,
        StateError,
    )
}


def error_to_wire(exc: BaseException) -> dict:
    """The reply payload for ``exc``; unexpected errors keep their text, not their class."""
    if isinstance(exc, CorralError):
        known = next(c.__name__ for c in type(exc).__mro__ if c.__name__ in _BY_NAME)
        wire = {"type": known, "message": str(exc)}
        field = getattr(exc, "field", None)
        if field:
            wire["field"] = field
        return wire
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # a path the caller gave that the OS refuses (ENAMETOOLONG from is_file()...):
        # said in a line, the path cut as any echoed input
        return {"type": "CorralError", "message": f"{exc.strerror}: {shorten(exc.filename)}"}
    text = str(exc)
    if len(text) > 4 * ECHO_LIMIT:  # it may quote a caller's input
        text = f"{text[: 4 * ECHO_LIMIT]}... ({len(text)} chars)"
    return {"type": "CorralError", "message": f"internal error: {type(exc).__name__}: {text}"}


def error_from_wire(wire: dict) -> CorralError:
    """Rebuild the exception a daemon reply describes."""
    cls = _BY_NAME.get(str(wire.get("type")), CorralError)
    message = str(wire.get("message", "unknown error"))
    if cls is OptionError:
        return OptionError(message, field=wire.get("field"))
    return cls(message)
