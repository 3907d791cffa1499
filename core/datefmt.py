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
from collections.abc import Callable
from datetime import datetime, timezone

from .errors import OptionError, shorten

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


def _moment_parts(fmt: str) -> list[str | Callable[[datetime], str]]:
    parts: list[str | Callable[[datetime], str]] = []
    for match in _MOMENT_TOKEN.finditer(fmt):
        bracketed, escaped, ordinal, _, unclosed, text = match.groups()
        token = match.group(0)
        literal = next((g for g in (bracketed, escaped, text) if g is not None), None)
        if literal is not None:
            parts.append(literal)
        elif unclosed is not None:
            raise _bad_format(fmt, fmt[match.start() :], "an unclosed bracket")
        elif token in _MOMENT:
            parts.append(_MOMENT[token])
        elif ordinal is not None or token[0] in _MOMENT_LETTERS:
            raise _bad_format(fmt, token)
        else:
            parts.append(token)
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
