"""Log line dates: a Unix time rendered as PM2's ``log_date_format`` would.

PM2 renders the format with dayjs (moment before it), and so does corral for
their common tokens: ``YYYY-MM-DD HH:mm:ss.SSS Z``, ``[text]`` or ``\\x`` for
literal text, and letters the tokens give no meaning to (the ``T`` in
``YYYY-MM-DDTHH:mm``) printed as they are. A format containing ``%`` is
strftime instead. A token neither can render raises :class:`OptionError` when
the format is compiled, rather than printing as text on every line.

Dates are local time, as in PM2; :func:`iso_timestamp` is the UTC stamp of
``log_type: json`` records when no format is given.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from corral.errors import OptionError, shorten

TIME_FORMAT = "YYYY-MM-DDTHH:mm:ss"  # the date of every line with the app option ``time: true``
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_DAYS = "Sunday Monday Tuesday Wednesday Thursday Friday Saturday".split()


def _offset(dt: datetime, sep: str) -> str:
    minutes = int(dt.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}{sep}{minutes:02d}"


def _ordinal(n: int) -> str:
    if 10 < n % 100 < 14:
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


def _fraction(digits: int) -> Callable[[datetime], str]:
    return lambda dt: f"{dt.microsecond:06d}".ljust(digits, "0")[:digits]


_MOMENT: dict[str, Callable[[datetime], str]] = {
    "YYYY": lambda dt: f"{dt.year:04d}",
    "YY": lambda dt: f"{dt.year % 100:02d}",
    "Q": lambda dt: str((dt.month - 1) // 3 + 1),
    "MMMM": lambda dt: _MONTHS[dt.month - 1],
    "MMM": lambda dt: _MONTHS[dt.month - 1][:3],
    "MM": lambda dt: f"{dt.month:02d}",
    "M": lambda dt: str(dt.month),
    "DDDD": lambda dt: f"{dt.timetuple().tm_yday:03d}",
    "DDD": lambda dt: str(dt.timetuple().tm_yday),
    "DD": lambda dt: f"{dt.day:02d}",
    "D": lambda dt: str(dt.day),
    "Do": lambda dt: _ordinal(dt.day),
    "dddd": lambda dt: _DAYS[(dt.weekday() + 1) % 7],
    "ddd": lambda dt: _DAYS[(dt.weekday() + 1) % 7][:3],
    "dd": lambda dt: _DAYS[(dt.weekday() + 1) % 7][:2],
    "d": lambda dt: str((dt.weekday() + 1) % 7),
    "HH": lambda dt: f"{dt.hour:02d}",
    "H": lambda dt: str(dt.hour),
    "hh": lambda dt: f"{dt.hour % 12 or 12:02d}",
    "h": lambda dt: str(dt.hour % 12 or 12),
    "kk": lambda dt: f"{dt.hour or 24:02d}",
    "k": lambda dt: str(dt.hour or 24),
    "mm": lambda dt: f"{dt.minute:02d}",
    "m": lambda dt: str(dt.minute),
    "ss": lambda dt: f"{dt.second:02d}",
    "s": lambda dt: str(dt.second),
    "A": lambda dt: "PM" if dt.hour >= 12 else "AM",
    "a": lambda dt: "pm" if dt.hour >= 12 else "am",
    "ZZ": lambda dt: _offset(dt, ""),
    "Z": lambda dt: _offset(dt, ":"),
    "X": lambda dt: str(int(dt.timestamp())),
    "x": lambda dt: str(int(dt.timestamp() * 1000)),
    **{"S" * n: _fraction(n) for n in range(1, 10)},
}
# Letters moment gives a meaning to: a run of them we do not render is an error, never
# silently printed as text. Other letters ("T" in "YYYY-MM-DDTHH:mm") are literal, as in moment.
_MOMENT_LETTERS = frozenset("YyMDdHhkmsSQNgGwWEeaAZzXxLl")
_MOMENT_TOKEN = re.compile(
    r"\[([^\]]*)\]|\\(.?)|(Do|(?:DDD|[MdQwWy])o)|([A-Za-z])\4*|(\[)|([^\[\\A-Za-z]+)", re.DOTALL
)

# strftime directives of Python and glibc; %f is Python's microseconds.
_STRFTIME_LETTERS = frozenset("aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZf%")
_STRFTIME_DIRECTIVE = re.compile(r"%[-_0^#]?(.|$)", re.DOTALL)

_HINT = (
    "use moment tokens (YYYY-MM-DD HH:mm:ss.SSS Z, [text] for literal text) "
    "or a strftime format (%Y-%m-%d %H:%M:%S)"
)


def _bad_format(fmt: str, token: str, what: str = "an unknown token") -> OptionError:
    return OptionError(
        f"log_date_format {shorten(fmt)} has {what} {shorten(token)}: {_HINT}",
        field="log_date_format",
    )


def _moment_pieces(fmt: str) -> Iterator[tuple[str, str]]:
    """``fmt`` (moment/dayjs) cut as moment reads it: ``("text", literal)`` for
    ``[text]``, ``\\x`` and what is not a letter, ``("token", token)`` for a run of one
    letter (``YYYY``) or an ordinal (``Do``), ``("unclosed", rest)`` at a ``[`` never
    closed. Both the rendering and the reading of a format walk these pieces."""
    for match in _MOMENT_TOKEN.finditer(fmt):
        bracketed, escaped, _, _, unclosed, text = match.groups()
        literal = next((g for g in (bracketed, escaped, text) if g is not None), None)
        if literal is not None:
            yield "text", literal
        elif unclosed is not None:
            yield "unclosed", fmt[match.start() :]
        else:
            yield "token", match.group(0)


def _moment_parts(fmt: str) -> list[str | Callable[[datetime], str]]:
    parts: list[str | Callable[[datetime], str]] = []
    for kind, piece in _moment_pieces(fmt):
        if kind == "text":
            parts.append(piece)
        elif kind == "unclosed":
            raise _bad_format(fmt, piece, "an unclosed bracket")
        elif piece in _MOMENT:
            parts.append(_MOMENT[piece])
        elif piece[0] in _MOMENT_LETTERS:  # ordinals among them: every one starts with one
            raise _bad_format(fmt, piece)
        else:
            parts.append(piece)
    return parts


def _strftime(fmt: str) -> Callable[[float], str]:
    for match in _STRFTIME_DIRECTIVE.finditer(fmt):
        if match.group(1) not in _STRFTIME_LETTERS:
            raise _bad_format(fmt, match.group(0))
    return lambda ts: datetime.fromtimestamp(ts).astimezone().strftime(fmt)


@functools.lru_cache(maxsize=64)
def date_formatter(fmt: str) -> Callable[[float], str]:
    """A function from a Unix time to ``fmt`` rendered in local time.

    ``fmt`` is moment/dayjs (as PM2's ``log_date_format``), or strftime when it
    contains ``%``. Raises :class:`OptionError` naming the token it cannot render.
    """
    if "%" in fmt:
        return _strftime(fmt)
    parts = _moment_parts(fmt)

    def render(ts: float) -> str:
        dt = datetime.fromtimestamp(ts).astimezone()
        return "".join(p if isinstance(p, str) else p(dt) for p in parts)

    return render


def iso_timestamp(ts: float) -> str:
    """UTC with milliseconds, as JavaScript's ``Date.toISOString()`` (PM2's json logs)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# -- reading a date back from a log line -------------------------------------

_NUMBERS = {
    "YYYY": ("year", r"\d{4}"),
    "YY": ("yy", r"\d{2}"),
    "MM": ("month", r"\d{2}"),
    "M": ("month", r"\d{1,2}"),
    "DD": ("day", r"\d{2}"),
    "D": ("day", r"\d{1,2}"),
    "HH": ("hour", r"\d{2}"),
    "H": ("hour", r"\d{1,2}"),
    "mm": ("minute", r"\d{2}"),
    "m": ("minute", r"\d{1,2}"),
    "ss": ("second", r"\d{2}"),
    "s": ("second", r"\d{1,2}"),
    "Z": ("tz", r"[+-]\d{2}:\d{2}"),
    "ZZ": ("tz", r"[+-]\d{4}"),
    "X": ("epoch", r"\d+"),
    "x": ("epoch_ms", r"\d+"),
}
_STRFTIME = {
    "Y": ("year", r"\d{4}"),
    "y": ("yy", r"\d{2}"),
    "m": ("month", r"\d{1,2}"),
    "d": ("day", r"\d{1,2}"),
    "H": ("hour", r"\d{1,2}"),
    "M": ("minute", r"\d{1,2}"),
    "S": ("second", r"\d{1,2}"),
    "f": ("fraction", r"\d{1,9}"),
    "z": ("tz", r"[+-]\d{4}"),
    "s": ("epoch", r"\d+"),
    "%": (None, "%"),
}


def _group(key: str | None, pattern: str, used: set[str]) -> str:
    if key is None or key in used:
        return f"(?:{pattern})"
    used.add(key)
    return f"(?P<{key}>{pattern})"


@functools.lru_cache(maxsize=64)
def _prefix_pattern(fmt: str) -> re.Pattern[str] | None:
    """A regex for ``<date>: `` at the start of a line, the date in ``fmt``."""
    used: set[str] = set()
    parts: list[str] = []
    if "%" in fmt:
        for piece in re.split(r"(%.)", fmt):
            if len(piece) == 2 and piece[0] == "%":
                key, pattern = _STRFTIME.get(piece[1], (None, r".+?"))
                parts.append(_group(key, pattern, used))
            else:
                parts.append(re.escape(piece))
    else:
        for kind, piece in _moment_pieces(fmt):
            if kind == "unclosed":
                return None  # a format the daemon refused: its lines have no date
            if kind == "text":
                parts.append(re.escape(piece))
            elif piece in _NUMBERS:
                parts.append(_group(*_NUMBERS[piece], used))
            elif set(piece) == {"S"}:
                parts.append(_group("fraction", rf"\d{{{len(piece)}}}", used))
            elif piece in ("A", "a") or piece[0] in "MDdhHkQEoWw":
                parts.append(r".+?")
            else:
                parts.append(re.escape(piece))
    try:
        return re.compile("".join(parts) + ": ")
    except re.error:
        return None


def _from_fields(found: dict[str, str | None]) -> float | None:
    if found.get("epoch"):
        return float(found["epoch"])  # type: ignore[arg-type]
    if found.get("epoch_ms"):
        return int(found["epoch_ms"]) / 1000  # type: ignore[arg-type]
    now = datetime.now()
    year = int(found["year"]) if found.get("year") else None
    if year is None and found.get("yy"):
        year = 2000 + int(found["yy"])  # type: ignore[arg-type]
    fraction = (found.get("fraction") or "0")[:6].ljust(6, "0")
    text = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{}{}".format(
        year or now.year,
        int(found.get("month") or now.month),
        int(found.get("day") or now.day),
        int(found.get("hour") or 0),
        int(found.get("minute") or 0),
        int(found.get("second") or 0),
        fraction,
        found.get("tz") or "",
    )
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def date_reader(fmt: str) -> Callable[[str], float | None]:
    """The inverse of :func:`date_formatter` for a log line: a function from a line to
    the Unix time of its ``"<date>: "`` prefix in ``fmt`` (None without one). Fields
    the format lacks are taken from today (the date) or are 0 (the time of day)."""
    pattern = _prefix_pattern(fmt)

    def read(line: str) -> float | None:
        found = pattern.match(line) if pattern is not None else None
        return _from_fields(found.groupdict()) if found else None

    return read


def line_date_format(options: dict[str, Any]) -> str | None:
    """The format of the date the daemon writes before each line of an app:
    ``log_date_format``, else ``YYYY-MM-DDTHH:mm:ss`` with ``time: true``, else None."""
    fmt = options.get("log_date_format")
    if isinstance(fmt, str) and fmt:
        return fmt
    return TIME_FORMAT if options.get("time") else None
