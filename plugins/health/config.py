"""The ``health`` option: one check or a list of them, validated into plain dicts.

Each check has exactly one probe:

- ``http: "http://127.0.0.1:${PORT}/healthz"``: a GET; a status from 200 to 399 passes
  (Kubernetes' rule). ``http://`` only.
- ``tcp: "127.0.0.1:8000"`` (or a port alone, on 127.0.0.1): a connection is accepted.
- ``exec: "test -e /run/app.ok"``: exits 0, run as the app's user in its cwd and env;
  a string is a command line for ``sh -c`` (``$VAR`` is the shell's), a list runs
  as it is, with no shell.

and these settings (Kubernetes probe names, in corral's spelling; times in ms or
``"5s"``): ``role`` (``liveness``, ``readiness`` or ``both``, the default),
``interval`` (10 s), ``timeout`` (1 s, or the interval if shorter; at most the
interval), ``initial_delay``
(0), ``failure_threshold`` (3), ``success_threshold`` (1). ``${VAR}`` in a probe
is the child's environment variable (``PORT`` of a shared socket, say), read at
each spawn. At most one check per role: ``both`` counts for both.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import corral
from corral.api import parse_ms

PROBES = ("http", "tcp", "exec")
ROLES = ("both", "liveness", "readiness")
DEFAULTS = {
    "role": "both",
    "interval": 10_000,
    "timeout": 1_000,
    "initial_delay": 0,
    "failure_threshold": 3,
    "success_threshold": 1,
}
_TIMES = ("interval", "timeout", "initial_delay")
_COUNTS = ("failure_threshold", "success_threshold")
_KEYS = frozenset(PROBES) | frozenset(DEFAULTS)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MIN_INTERVAL_MS = 100
MAX_TIME_MS = 86_400_000  # a day: longer is a typo, not a probe
MAX_COUNT = 10_000
MAX_CHECKS = len(ROLES) - 1


def _error(where: str, message: str) -> corral.OptionError:
    return corral.OptionError(f"{where}: {message}", field="health")


def validate(value: Any) -> list[dict[str, Any]]:
    """The ``health`` option as a list of complete checks, or OptionError naming the key."""
    checks = value if isinstance(value, list) else [value]
    if not checks:
        raise _error("health", "give a check, e.g. {http: 'http://127.0.0.1:${PORT}/healthz'}")
    result = [
        _check(check, "health" if len(checks) == 1 else f"health[{i}]")
        for i, check in enumerate(checks)
    ]
    roles = [c["role"] for c in result]
    for role in ("liveness", "readiness"):
        if sum(r in (role, "both") for r in roles) > 1:
            message = f"two checks have the role {role} (both counts as it): keep one"
            raise _error("health", message)
    return result


def _check(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _error(where, f"must be a mapping with one of {', '.join(PROBES)}, got {raw!r:.80}")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        raise _error(where, f"unknown key {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}")
    probes = [p for p in PROBES if p in raw]
    if len(probes) != 1:
        raise _error(where, f"give exactly one of {', '.join(PROBES)}, got {probes or 'none'}")
    kind = probes[0]
    check: dict[str, Any] = {kind: _probe(kind, raw[kind], f"{where}.{kind}")}
    for key, default in DEFAULTS.items():
        check[key] = raw.get(key, default)
    if check["role"] not in ROLES:
        raise _error(f"{where}.role", f"must be one of {', '.join(ROLES)}, got {check['role']!r}")
    for key in _TIMES:
        try:
            check[key] = parse_ms(check[key], f"{where}.{key}")
        except corral.OptionError as exc:
            raise corral.OptionError(str(exc), field="health") from None
    for key in _COUNTS:
        count = check[key]
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            message = f"must be a whole number from 1 to {MAX_COUNT}, got {count!r}"
            raise _error(f"{where}.{key}", message)
    for key in _TIMES:
        if check[key] > MAX_TIME_MS:
            raise _error(f"{where}.{key}", f"must be at most a day ({MAX_TIME_MS} ms)")
    if check["interval"] < MIN_INTERVAL_MS:
        raise _error(f"{where}.interval", f"must be at least {MIN_INTERVAL_MS} ms")
    if "timeout" not in raw:  # the default, 1 s, never longer than the interval given
        check["timeout"] = min(check["timeout"], check["interval"])
    if not 0 < check["timeout"] <= check["interval"]:
        raise _error(f"{where}.timeout", "must be above 0 and at most the interval")
    return check


def _probe(kind: str, value: Any, where: str) -> Any:
    if kind == "exec":
        if isinstance(value, str) and value.strip():
            return value  # a command line for sh -c
        if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
            raise _error(where, "must be a command line or a list of strings")
        return value
    if kind == "tcp" and isinstance(value, int) and not isinstance(value, bool):
        value = f"127.0.0.1:{value}"
    if kind == "tcp" and isinstance(value, str) and value.strip().isdigit():
        value = f"127.0.0.1:{value.strip()}"  # a port alone, as a string
    if not isinstance(value, str) or not value.strip():
        raise _error(where, f"must be a string, got {value!r:.80}")
    if "${" not in value:  # with variables, checked again once they are known
        target(kind, value, where)
    return value


def target(kind: str, value: str, where: str = "health") -> tuple[str, int, str]:
    """(host, port, path) of an http or tcp probe, or OptionError saying what is wrong."""
    if kind == "http":
        from urllib.parse import urlsplit  # here: 2 ms of imports a daemon's start need not pay

        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname:
            raise _error(where, f"must be an http:// URL with a host, got {value!r}")
        try:
            port = parts.port or 80
        except ValueError:
            raise _error(where, f"has a bad port: {value!r}") from None
        path = parts.path or "/"
        return parts.hostname, port, path + (f"?{parts.query}" if parts.query else "")
    host, sep, port_text = value.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _error(where, f"must be host:port with a port from 1 to 65535, got {value!r}")
    return host, int(port_text), ""


def expand(value: Any, env: dict[str, str]) -> Any:
    """``${VAR}`` replaced from ``env`` (a string, or each string of a list); KeyError
    names the first variable the child's environment lacks."""
    if isinstance(value, list):
        return [expand(item, env) for item in value]
    return _VARIABLE.sub(lambda m: env[m[1]], value)


def kind_of(check: dict[str, Any]) -> str:
    return next(p for p in PROBES if p in check)


def shown(check: dict[str, Any]) -> str:
    """``http http://127.0.0.1:8000/healthz``: the probe, as events and describe name it."""
    kind = kind_of(check)
    value = check[kind]
    return f"{kind} {shlex.join(value) if isinstance(value, list) else value}"


def argv_of(command: str | list[str]) -> list[str]:
    """An exec check's argv: a string runs under ``sh -c``, a list as it is."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


def bound_s(check: dict[str, Any]) -> float:
    """How long a readiness check may hold a child: initial_delay + threshold x interval."""
    return (check["initial_delay"] + check["failure_threshold"] * check["interval"]) / 1000
