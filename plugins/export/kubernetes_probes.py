"""The Kubernetes exporter's probes: liveness and readiness from the health checks
and ``wait_ready``.

The kubelet runs an ``httpGet`` or ``tcpSocket`` probe against the pod's IP: an app
whose ``listen`` is on loopback (``127.0.0.1:8000``) never answers it, and a liveness
probe would restart the pod forever. Such an app's http and tcp checks on loopback are
``exec`` probes instead, run inside the container by the image's ``python3`` (corral
runs on it): :data:`HTTP_PROBE` and :data:`TCP_PROBE`, the standard library only, exit 0
when the check passes as the health plugin says (a status 200-399, a connection), 1
with why on stderr otherwise.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from .kubernetes_service import is_loopback, listen_host

# `corral ready NAME` starts a Python CLI: the kubelet's default 1 s may not cover it
READY_PROBE = {"periodSeconds": 5, "timeoutSeconds": 5}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # the health plugin's ${VAR}

# python3 -c HTTP_PROBE URL TIMEOUT_S: a GET; a status of 200-399 passes (no redirect is
# followed, as the health plugin's); https is not verified, as the kubelet's httpGet
HTTP_PROBE = """\
import http.client, ssl, sys, urllib.parse
url, timeout = urllib.parse.urlsplit(sys.argv[1]), float(sys.argv[2])
if url.scheme == "https":
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    conn = http.client.HTTPSConnection(
        url.hostname, url.port or 443, timeout=timeout, context=context
    )
else:
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
path = (url.path or "/") + ("?" + url.query if url.query else "")
try:
    conn.request("GET", path, headers={"User-Agent": "corral-probe"})
    status = conn.getresponse().status
except (OSError, http.client.HTTPException) as exc:
    sys.exit(f"{sys.argv[1]}: {exc or type(exc).__name__}")
if not 200 <= status < 400:
    sys.exit(f"{sys.argv[1]}: status {status}")
"""
# python3 -c TCP_PROBE HOST PORT TIMEOUT_S: a connection accepted passes
TCP_PROBE = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    sys.exit(f"{sys.argv[1]}:{sys.argv[2]}: {exc or type(exc).__name__}")
"""


def probes(app: Any, port: int | None, notes: list[str]) -> tuple[dict | None, dict | None]:
    """(livenessProbe, readinessProbe) from the health checks and ``wait_ready``."""
    options = app.options
    known = dict(app.env)
    if port is not None:
        known["PORT"] = str(port)  # corral sets PORT from listen/port over the env
    liveness = readiness = None
    host = listen_host(options)
    in_pod = bool(host) and is_loopback(str(host))  # the kubelet cannot reach the app
    # a pod has one probe of each kind: the first check of a role gives it, each other
    # one is said (the health plugin refuses two of one role in a file; an API caller
    # may not). With wait_ready, `corral ready` covers every readiness check.
    first: dict[str, str] = {}
    for check in options.get("health") or []:
        kind = next(k for k in ("http", "tcp", "exec") if k in check)
        shown = f"health ({check['role']}) {kind} {check[kind]!r}"
        roles = []
        for role in ("liveness", "readiness"):
            if check["role"] not in (role, "both"):
                continue
            if role == "readiness" and options.get("wait_ready"):
                continue
            if role in first:
                notes.append(
                    f"{shown}: a pod has one {role}Probe, from {first[role]}: not exported as one"
                )
            else:
                first[role] = shown
                roles.append(role)
        if not roles:
            continue
        action, why = probe_action(
            kind, check[kind], known, in_pod=in_pod, timeout_ms=check.get("timeout") or 1000
        )
        if action is not None and kind != "exec" and "exec" in action:
            notes.append(
                f"{shown}: the app listens on loopback only (listen {options['listen']!r}), "
                "which the kubelet's probe of the pod's IP cannot reach: exported as an exec "
                "probe running python3 in the container"
            )
        timing = probe_timing(check, shown, notes) if action is not None else {}
        if "liveness" in roles:
            if action is None:
                notes.append(f"{shown}: {why}: no livenessProbe")
            else:
                liveness = {**action, **timing, "successThreshold": 1}
                if check["success_threshold"] != 1:
                    notes.append(
                        f"{shown}: success_threshold {check['success_threshold']}: a "
                        "livenessProbe takes 1 only: 1 exported"
                    )
        if "readiness" in roles:
            if action is None:
                notes.append(f"{shown}: {why}: the readinessProbe runs `corral ready` instead")
                readiness = ready_probe(app.name)
            else:
                readiness = {**action, **timing, "successThreshold": check["success_threshold"]}
    if options.get("wait_ready"):
        # one readinessProbe only: `corral ready` says ready once the app sent its
        # signal and its readiness check, if any, passed in the pod
        readiness = ready_probe(app.name)
    return liveness, readiness


def ready_probe(app_name: str) -> dict[str, Any]:
    return {"exec": {"command": ["corral", "ready", app_name]}, **READY_PROBE}


def probe_action(
    kind: str,
    value: Any,
    known: dict[str, str],
    *,
    in_pod: bool = False,
    timeout_ms: int = 1000,
) -> tuple[dict | None, str]:
    """The probe's handler (httpGet, tcpSocket, exec), or None and why not. With
    ``in_pod`` (the app listens on loopback only), an http or tcp check on loopback is an
    exec probe run in the container, bounded by ``timeout_ms``."""
    missing = sorted({m for m in _VARIABLE.findall(str(value)) if m not in known})
    if missing:
        return None, f"${{{missing[0]}}} is not known before the pod runs"
    value = _expand(value, known)
    timeout = f"{int(timeout_ms) / 1000:g}"
    if kind == "exec":
        command = ["/bin/sh", "-c", value] if isinstance(value, str) else list(value)
        return {"exec": {"command": command}}, ""
    if kind == "http":
        parts = urlsplit(value)
        https = parts.scheme.lower() == "https"
        try:
            target_port = parts.port or (443 if https else 80)
        except ValueError:
            return None, "its port is not a number"
        if in_pod and _on_loopback(parts.hostname):
            return {"exec": {"command": ["python3", "-c", HTTP_PROBE, value, timeout]}}, ""
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        action: dict[str, Any] = {"path": path, "port": target_port}
        if https:
            action["scheme"] = "HTTPS"  # the kubelet does not verify the certificate
        return {"httpGet": _with_host(action, parts.hostname)}, ""
    host, _, port_text = value.strip().rpartition(":")
    if not port_text.isdigit():
        return None, "its port is not a number"
    host = host.strip("[]")
    if in_pod and _on_loopback(host):
        command = ["python3", "-c", TCP_PROBE, host or "127.0.0.1", port_text, timeout]
        return {"exec": {"command": command}}, ""
    return {"tcpSocket": _with_host({"port": int(port_text)}, host)}, ""


def _on_loopback(host: str | None) -> bool:
    """Whether a check's host is the pod itself (none: 127.0.0.1, as the health plugin)."""
    return not host or is_loopback(host)


def _with_host(action: dict[str, Any], host: str | None) -> dict[str, Any]:
    """The kubelet probes the pod's IP: a loopback host means that one."""
    if host and not is_loopback(host):
        return {"host": host, **action}
    return action


def _expand(value: Any, known: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_expand(item, known) for item in value]
    return _VARIABLE.sub(lambda m: known[m[1]], str(value))


def probe_timing(check: dict[str, Any], shown: str, notes: list[str]) -> dict[str, int]:
    """The check's times in whole seconds (Kubernetes' unit), rounded up; a note
    when that changed one."""
    timing = {}
    if check["initial_delay"]:
        timing["initialDelaySeconds"] = math.ceil(check["initial_delay"] / 1000)
    timing["periodSeconds"] = max(1, math.ceil(check["interval"] / 1000))
    timing["timeoutSeconds"] = max(1, math.ceil(check["timeout"] / 1000))
    timing["failureThreshold"] = check["failure_threshold"]
    rounded = [key for key in ("initial_delay", "interval", "timeout") if check[key] % 1000]
    if rounded:
        notes.append(f"{shown}: {', '.join(rounded)} rounded up to whole seconds")
    return timing
