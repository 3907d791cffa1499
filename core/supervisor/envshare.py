"""Shared app environments: apps with the same variables hold one dict, encoded once.

An app's environment is the caller's whole environment plus its ``env`` option, so
the apps of one file (or one shell) usually carry the same few kilobytes each. The
daemon keeps one :class:`SharedEnv` per distinct environment (same variables, same
order) and every app with it points at that one; ``jlist`` encodes it once.
A shared environment is never changed in place: a change replaces ``proc.env``.
"""

from __future__ import annotations

import weakref
from typing import Any, NoReturn

__all__ = ["SharedEnv", "generation", "share", "shared_slot"]


class SharedEnv(dict):
    """A read-only ``dict`` of variables, shared by the apps that have them.

    ``json`` caches its encodings (see ``ManagedProcess._fixed_json``). A copy
    (``dict(env)``, ``copy``, pickling) is a plain, writable ``dict``.
    """

    __slots__ = ("__weakref__", "json")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json: dict[Any, tuple[str, str]] = {}

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an app's environment is shared: replace proc.env, do not change it")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return dict(self)


# hash of the items -> the SharedEnv with them (weakly: it goes with its last app)
_TABLE: dict[int, weakref.ref[SharedEnv]] = {}


def share(env: dict[str, Any]) -> SharedEnv:
    """The shared environment equal to ``env`` (same items, same order), made if none is."""
    if type(env) is SharedEnv:
        return env
    items = tuple(env.items())
    try:
        key = hash(items)
    except TypeError:  # an unhashable value: kept on its own
        return SharedEnv(env)
    ref = _TABLE.get(key)
    found = ref() if ref is not None else None
    if found is not None and tuple(found.items()) == items:
        return found
    made = SharedEnv(env)
    _TABLE[key] = weakref.ref(made, lambda r, key=key: _forget(key, r))
    return made


def _forget(key: int, ref: weakref.ref[SharedEnv]) -> None:
    if _TABLE.get(key) is ref:
        del _TABLE[key]


_generation = 0  # counts the environments set: what was read is still right while it holds


def generation() -> int:
    """How many environments were set so far (by :func:`shared_slot`'s setter)."""
    return _generation


def shared_slot(cls: type, name: str) -> None:
    """Make the slot ``name`` of ``cls`` share what it is given (:func:`share`) when set."""
    slot = cls.__dict__[name]  # the member descriptor of a __slots__ class

    def set_shared(obj: Any, value: dict[str, Any]) -> None:
        global _generation
        slot.__set__(obj, share(value))
        _generation += 1

    setattr(cls, name, property(slot.__get__, set_shared, doc=slot.__doc__))
