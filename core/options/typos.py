"""Unknown option keys: every one of a batch in one error, a hint only when it is close.

Keys compare in one form, without case, ``_`` and ``-`` (``Max-Restarts`` is
``max_restarts``, ``LOG_DATE_FORMAT`` is ``log_date_format``), and a hint is given
only above :data:`HINT_CUTOFF`: ``log_rotate`` suggests nothing rather than
``logrotate_retain``, ``instnces`` suggests ``instances``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from corral.errors import OptionError, shorten

HINT_CUTOFF = 0.8  # difflib's ratio a key must reach to be suggested: log_rotate's is 0.75


def closest(key: str, known: Iterable[str]) -> str | None:
    """The known key ``key`` is probably a typo of, spelled in ``key``'s style, or None."""
    by_form: dict[str, list[str]] = {}
    for name in known:
        by_form.setdefault(_form(name), []).append(name)
    close = difflib.get_close_matches(_form(key), list(by_form), n=1, cutoff=HINT_CUTOFF)
    if not close:
        return None
    spellings = by_form[close[0]]
    return next((k for k in spellings if _is_camel(k) == _is_camel(key)), spellings[0])


def unknown_option(key: str, hint: str | None) -> str:
    """The message for one unknown key."""
    if hint:
        return f"unknown option {shorten(key)}: did you mean {hint!r}?"
    return f"unknown option {shorten(key)}; see `corral start --help` for the list"


def refuse_unknown(
    found: list[tuple[int, Mapping[str, Any], list[str]]],
    hint: Callable[[str], str | None],
    *,
    labels: bool,
) -> None:
    """One OptionError for ``found``: (index, app, its unknown keys) of each app that has
    some; ``labels`` names each app (``apps[1] (worker)``). Nothing found: no error."""
    if not found:
        return
    first = found[0][2][0]
    if len(found) == 1 and len(found[0][2]) == 1 and not labels:
        raise OptionError(unknown_option(first, hint(first)), field=first)
    parts = []
    for index, raw, keys in found:
        named = ", ".join(_with_hint(key, hint(key)) for key in keys)
        parts.append(f"{app_label(raw, index)}: {named}" if labels else named)
    count = sum(len(keys) for _, _, keys in found)
    raise OptionError(
        f"{count} unknown option{'s' if count > 1 else ''}: {'; '.join(parts)}: "
        "fix or remove them (`corral start --help` lists the options)",
        field=first,
    )


def _with_hint(key: str, hint: str | None) -> str:
    return f"{shorten(key)} (did you mean {hint!r}?)" if hint else shorten(key)


def _form(key: str) -> str:
    """A key without case, ``_`` and ``-``: the form typos are compared in."""
    return key.lower().replace("_", "").replace("-", "")


def _is_camel(key: str) -> bool:
    return "_" not in key and any(char.isupper() for char in key[1:])


def app_label(raw: Mapping[str, Any], index: int) -> str:
    """How an error names the app at ``index`` of a file: ``apps[1] (worker)``."""
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        return f"apps[{index}]"
    return f"apps[{index}] ({name if name.isprintable() and len(name) < 80 else shorten(name)})"
