"""The Kubernetes exporter's pod: the container running ``corral runtime``, its
security context and resources.
"""

from __future__ import annotations

import math
import posixpath
import re
from typing import Any

from .kubernetes_probes import probes
from .kubernetes_settings import Settings

# corral runtime gets SIGTERM, sends the app its kill_signal, waits kill_timeout,
# kills it, then exits itself: the pod's grace covers all of it, or the kubelet's
# SIGKILL lands in the middle of a clean stop
GRACE_MARGIN_S = 5
DEFAULT_KILL_TIMEOUT_MS = 1600  # kill_timeout 0 means this, as in PM2
_CPU_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def pod_spec(
    app: Any,
    name: str,
    settings: Settings,
    port: int | None,
    has_config_map: bool,
    secret_keys: list[str],
    notes: list[str],
) -> dict[str, Any]:
    options = app.options
    kill_timeout_ms = int(options.get("kill_timeout") or DEFAULT_KILL_TIMEOUT_MS)
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": math.ceil(kill_timeout_ms / 1000) + GRACE_MARGIN_S
    }
    security = security_context(options, notes)
    if security:
        spec["securityContext"] = security
    spec["containers"] = [container(app, name, settings, port, has_config_map, secret_keys, notes)]
    return spec


def container(
    app: Any,
    name: str,
    settings: Settings,
    port: int | None,
    has_config_map: bool,
    secret_keys: list[str],
    notes: list[str],
) -> dict[str, Any]:
    """The one container: ``corral runtime`` running one instance of the app."""
    args = [settings.config_path, "--only", app.name, "--instances", "1"]
    if settings.env_name:
        args += ["--env", settings.env_name]
    spec: dict[str, Any] = {
        "name": name,
        "image": settings.image,
        "command": ["corral", "runtime"],
        "args": args,
        "workingDir": working_dir(app.options, settings.config_path),
    }
    if has_config_map:
        spec["envFrom"] = [{"configMapRef": {"name": f"{name}-env"}}]
    if secret_keys:
        spec["env"] = [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": f"{name}-secrets", "key": key}}}
            for key in secret_keys
        ]
    if port is not None:
        spec["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    resources = resources_of(app.options, notes)
    if resources:
        spec["resources"] = resources
    liveness, readiness = probes(app, port, notes)
    if liveness:
        spec["livenessProbe"] = liveness
    if readiness:
        spec["readinessProbe"] = readiness
    return spec


def working_dir(options: dict[str, Any], config_path: str) -> str:
    """The app's cwd when absolute; else the app file's folder, where corral runtime
    resolves a relative cwd and script as ``corral start`` run from there does."""
    cwd = options.get("cwd")
    if cwd and posixpath.isabs(str(cwd)):
        return str(cwd)
    return posixpath.dirname(config_path) or "/"


def security_context(options: dict[str, Any], notes: list[str]) -> dict[str, int]:
    """``uid``/``gid`` as ids; a name means nothing to Kubernetes (it has no passwd)."""
    context = {}
    for option, field in (("uid", "runAsUser"), ("gid", "runAsGroup")):
        value = options.get(option)
        if value is None:
            continue
        if str(value).isdigit():
            context[field] = int(value)
        else:
            notes.append(
                f"{option} {value!r} is a name; Kubernetes takes a number "
                f"(securityContext.{field}): not exported"
            )
    return context


def resources_of(options: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Limits: ``memory_max`` (the kernel's limit, as in the pod), else
    ``max_memory_restart``; ``cpu_max``."""
    limits: dict[str, str] = {}
    memory = options.get("memory_max") or options.get("max_memory_restart")
    if memory:
        limits["memory"] = quantity(int(memory))
    cpu = options.get("cpu_max")
    if cpu:
        match = _CPU_PERCENT.match(str(cpu))
        if match:
            limits["cpu"] = millicores(float(match[1]))
        else:
            notes.append(f"cpu_max {cpu!r} is not a percentage: not exported")
    if options.get("pids_max"):
        notes.append(
            "pids_max has no field in a pod (the kubelet's podPidsLimit is per node): not exported"
        )
    return {"limits": limits} if limits else {}


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: ``200Mi``, ``1Gi``, or the plain number."""
    for suffix, unit in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def millicores(percent: float) -> str:
    """``50`` (% of one CPU) as ``500m``; ``200`` as ``2``."""
    milli = max(1, math.ceil(percent * 10))
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
