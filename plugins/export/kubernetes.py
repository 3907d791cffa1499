"""The export_kubernetes plugin: ``corral export kubernetes CONFIG --image IMAGE``,
an app file as Kubernetes manifests.

Each app becomes one file, ``<name>.yaml``: a Deployment (``instances`` pods, each
running one instance under ``corral runtime``, the image's entrypoint), a Job for
an app with ``autorestart: false``, a CronJob for one that also has
``cron_restart``; a Service for an app with ``listen`` or ``port``; a ConfigMap
for its env, whose secret-looking values go to a Secret ``<name>-secrets``
instead (written only with ``--include-secrets``). Every option Kubernetes cannot
carry is one warning, ``"<app>: <option> ..."``. What maps to what, option by
option: ``docs/plugins/export-kubernetes.md``.
"""

from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import corral
from corral import ConfigError, OptionError
from corral.api import is_secret

from . import Exporter, ExportRequest, ExportResult

MANAGED_BY = "corral"
NAME_LABEL = "app.kubernetes.io/name"
# a CronJob's name is at most 52 characters (its Jobs add 11); every kind gets the
# same cap so that an app has one name whatever it becomes
MAX_NAME = 52
# corral runtime gets SIGTERM, sends the app its kill_signal, waits kill_timeout,
# kills it, then exits itself: the pod's grace covers all of it, or the kubelet's
# SIGKILL lands in the middle of a clean stop
GRACE_MARGIN_S = 5
DEFAULT_KILL_TIMEOUT_MS = 1600  # kill_timeout 0 means this, as in PM2
# `corral ready NAME` starts a Python CLI: the kubelet's default 1 s may not cover it
READY_PROBE = {"periodSeconds": 5, "timeoutSeconds": 5}
LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1", "0:0:0:0:0:0:0:1"))
CRON_NICKNAMES = frozenset(
    ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
)

_NOT_IN_NAME = re.compile(r"[^a-z0-9-]+")
_DASHES = re.compile(r"-{2,}")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # a ConfigMap key and a variable
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # the health plugin's ${VAR}
_CPU_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Settings:
    """The exporter's params, checked."""

    image: str
    namespace: str | None
    config_path: str  # the app file inside the image, as corral runtime reads it
    env_name: str | None
    include_secrets: bool


# -- the plugin -----------------------------------------------------------------


@corral.hookimpl
def corral_exporters() -> list[Any]:
    return [
        Exporter(
            name="kubernetes",
            help="Write Kubernetes manifests: a Deployment (or a Job, a CronJob), a "
            "Service and a ConfigMap per app, each pod running `corral runtime`.",
            render=render,
            params=params(),
            stdout_separator="---\n",
        )
    ]


def params() -> list[Any]:
    """The click options of ``corral export kubernetes``."""
    import click  # deferred: click loads in the CLI only

    return [
        click.Option(
            ["--image"],
            required=True,
            metavar="IMAGE",
            help="The container image holding corral and the app (see examples/Dockerfile).",
        ),
        click.Option(["--namespace"], metavar="NS", help="The Kubernetes namespace."),
        click.Option(
            ["--config-path"],
            metavar="PATH",
            help="The app file inside the image (default: /app/<name of CONFIG>).",
        ),
        click.Option(
            ["--include-secrets"],
            is_flag=True,
            help="Write secret-looking env values into a Secret manifest, in clear.",
        ),
    ]


def render(request: ExportRequest) -> ExportResult:
    """One ``<name>.yaml`` per app, and a warning per option that does not map."""
    settings = settings_of(request)
    names = kubernetes_names(request.config)
    files: dict[str, str] = {}
    warnings: list[str] = []
    for app, name in zip(request.config.apps, names, strict=True):
        notes = [*app.warnings]
        documents = manifests(app, name, settings, notes)
        files[f"{name}.yaml"] = dump(documents)
        warnings.extend(f"{app.name}: {note}" for note in notes)
    return ExportResult(files=files, warnings=warnings)


def dump(documents: list[dict]) -> str:
    """The documents as YAML, in the order written, a dict used twice written twice
    (an ``&id001`` anchor is valid YAML that people and some tools trip on)."""
    import yaml  # deferred: only an export writes YAML

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, width=4096)


def settings_of(request: ExportRequest) -> Settings:
    """The params checked: OptionError naming the one that is wrong."""
    given = request.params
    image = str(given.get("image") or "").strip()
    if not image:
        raise OptionError(
            "--image is required: the image holding corral and the app "
            "(examples/Dockerfile builds one)",
            field="--image",
        )
    namespace = given.get("namespace")
    if namespace is not None and not _DNS_LABEL.match(namespace):
        raise OptionError(
            f"--namespace {namespace!r} is not a Kubernetes name: lowercase letters, "
            "digits and '-', at most 63",
            field="--namespace",
        )
    config_path = given.get("config_path") or f"/app/{request.config.path.name}"
    if not posixpath.isabs(config_path):
        raise OptionError(
            f"--config-path {config_path!r} must be absolute: the app file's path in the image",
            field="--config-path",
        )
    return Settings(
        image=image,
        namespace=namespace,
        config_path=config_path,
        env_name=request.env_name,
        include_secrets=bool(given.get("include_secrets")),
    )


# -- names ----------------------------------------------------------------------


def kubernetes_name(app_name: str) -> str:
    """A DNS-1035 label made from ``app_name``: lowercase, other characters to '-',
    ``app-`` before a leading digit (a Service name starts with a letter), at most
    MAX_NAME characters. ConfigError when nothing is left."""
    name = _DASHES.sub("-", _NOT_IN_NAME.sub("-", app_name.lower())).strip("-")
    if name and not name[0].isalpha():
        name = f"app-{name}"
    name = name[:MAX_NAME].rstrip("-")
    if not name:
        raise ConfigError(
            f"app {app_name!r}: its name has no letter or digit to make a Kubernetes "
            "name of: rename it (a-z, 0-9, '-')"
        )
    return name


def kubernetes_names(config: Any) -> list[str]:
    """Each app's Kubernetes name, in order; ConfigError when two apps make the same."""
    names: list[str] = []
    taken: dict[str, str] = {}
    for app in config.apps:
        if "," in app.name:  # corral runtime --only reads a comma-separated list
            raise ConfigError(
                f"{config.path}: app {app.name!r}: a ',' in the name cannot be given to "
                "corral runtime --only: rename it"
            )
        name = kubernetes_name(app.name)
        if name in taken:
            raise ConfigError(
                f"{config.path}: apps {taken[name]!r} and {app.name!r} both make the "
                f"Kubernetes name {name!r}: rename one"
            )
        taken[name] = app.name
        names.append(name)
    return names


# -- one app's manifests --------------------------------------------------------


def manifests(app: Any, name: str, settings: Settings, notes: list[str]) -> list[dict]:
    """The documents of one app: ConfigMap, Secret, the workload, Service (those it needs)."""
    options = app.options
    labels = labels_of(app, name, notes)
    warn_unmapped(app, notes)
    port = service_port(options, notes)
    plain, secret = split_env(app.env, notes)
    documents = []
    if plain:
        documents.append(config_map(name, labels, settings, plain))
    if secret:
        if settings.include_secrets:
            documents.append(secret_manifest(name, labels, settings, secret))
        else:
            verb = "looks" if len(secret) == 1 else "look"
            notes.append(
                f"env {', '.join(secret)} {verb} secret: not written; create the Secret: "
                f"kubectl create secret generic {name}-secrets "
                + " ".join(f"--from-literal={key}=..." for key in secret)
                + " (or export with --include-secrets)"
            )
    pod = pod_spec(app, name, settings, port, bool(plain), list(secret), notes)
    documents.append(workload(app, name, labels, settings, pod, notes))
    if port is not None:
        documents.append(service(name, labels, settings, port))
    return documents


def labels_of(app: Any, name: str, notes: list[str]) -> dict[str, str]:
    labels = {NAME_LABEL: name, "app.kubernetes.io/managed-by": MANAGED_BY}
    group = str(app.options.get("namespace") or "default")
    if group != "default":  # corral's namespace groups apps, as part-of does
        part_of = _DASHES.sub("-", _NOT_IN_NAME.sub("-", group.lower())).strip("-")[:63]
        if part_of:
            labels["app.kubernetes.io/part-of"] = part_of.rstrip("-")
        else:
            notes.append(f"namespace {group!r} makes no label value: not exported")
    return labels


def metadata(name: str, labels: dict[str, str], settings: Settings) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if settings.namespace:
        meta["namespace"] = settings.namespace
    meta["labels"] = dict(labels)
    return meta


def workload(
    app: Any, name: str, labels: dict, settings: Settings, pod: dict, notes: list[str]
) -> dict:
    """A Deployment for a long-running app, a Job for a one-shot (``autorestart:
    false``), a CronJob for a one-shot with ``cron_restart``."""
    options = app.options
    replicas = replicas_of(app, notes)
    cron = cron_of(options)
    if options.get("autorestart", True):
        if cron:
            notes.append(
                f"cron_restart {cron!r} on a long-running app has no Kubernetes equivalent "
                "(a CronJob runs a job: autorestart false): not exported"
            )
        return deployment(app, name, labels, settings, pod, replicas)
    schedule = cron_schedule(cron) if cron else None
    if cron and schedule is None:
        notes.append(
            f"cron_restart {cron!r} has no CronJob schedule (5 fields, no seconds, or "
            "@hourly...): exported as a Job that runs once"
        )
    job = job_spec(labels, pod, replicas)
    if schedule is None:
        if not options.get("autostart", True):
            job["suspend"] = True  # registered, not started: resume it to run it
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": metadata(name, labels, settings),
            "spec": job,
        }
    if options.get("autostart", True):
        notes.append(
            "autostart: corral also runs the job once when it starts; a CronJob runs it "
            "at the ticks only"
        )
    spec: dict[str, Any] = {"schedule": schedule}
    if options.get("cron_tz"):
        spec["timeZone"] = str(options["cron_tz"])
    # a tick while the job still runs restarts it, as corral's cron does
    spec["concurrencyPolicy"] = "Replace"
    spec["jobTemplate"] = {"metadata": {"labels": dict(labels)}, "spec": job}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(name, labels, settings),
        "spec": spec,
    }


def deployment(
    app: Any, name: str, labels: dict, settings: Settings, pod: dict, replicas: int
) -> dict:
    if not app.options.get("autostart", True):
        replicas = 0  # registered, not started: scale it up to start it
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, labels, settings),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {NAME_LABEL: name}},
            # corral's reload starts the new instance before it stops the old one
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def job_spec(labels: dict, pod: dict, replicas: int) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if replicas > 1:
        spec["parallelism"] = replicas
        spec["completions"] = replicas
    spec["backoffLimit"] = 0  # autorestart false: a failed run is not run again
    # an app with autorestart false is not restarted in its pod either
    template_spec = {**pod, "restartPolicy": "Never"}
    spec["template"] = {"metadata": {"labels": dict(labels)}, "spec": template_spec}
    return spec


def replicas_of(app: Any, notes: list[str]) -> int:
    """``instances``: one pod each, so never instances x instances processes."""
    count = app.instances
    if not isinstance(count, int) or count < 1:
        per_cpu = "-1 (one per CPU but one)" if count == -1 else f"{count} or max (one per CPU)"
        notes.append(
            f"instances {per_cpu} has no Kubernetes equivalent (a pod does not know the "
            "node's CPUs): replicas 1; set the replicas, or add a HorizontalPodAutoscaler"
        )
        return 1
    if count > 1:
        variable = app.options.get("instance_var") or "NODE_APP_INSTANCE"
        notes.append(
            f"instances {count}: {count} pods of one instance each, all numbered 0: "
            f"{variable} is 0 in every pod (work done on instance 0 only is done in each)"
        )
    return count


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


# -- env ------------------------------------------------------------------------


def split_env(env: dict[str, str], notes: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) variables; a name Kubernetes refuses is a note, not exported."""
    plain, secret = {}, {}
    for key, value in env.items():
        if not _ENV_NAME.match(key):
            notes.append(f"env {key!r} is not a Kubernetes variable name: not exported")
        elif is_secret(key, value):
            secret[key] = value
        else:
            plain[key] = value
    return plain, secret


def config_map(name: str, labels: dict, settings: Settings, env: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(f"{name}-env", labels, settings),
        "data": dict(env),
    }


def secret_manifest(name: str, labels: dict, settings: Settings, env: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(f"{name}-secrets", labels, settings),
        "type": "Opaque",
        "stringData": dict(env),
    }


# -- network --------------------------------------------------------------------


def service_port(options: dict[str, Any], notes: list[str]) -> int | None:
    """The TCP port of ``listen`` (else ``port``) that a Service exposes, or None."""
    listen = options.get("listen")
    if listen:
        text = str(listen).strip()
        if text.startswith("unix:"):
            notes.append(f"listen {text!r} is a unix socket: no Service (a Service is TCP)")
            return None
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = "", text
        if host.strip("[]") in LOOPBACK:
            notes.append(
                f"listen {text!r} is loopback only: the Service cannot reach it; "
                f"listen on ':{port}'"
            )
        return checked_port("listen", port, notes)
    if options.get("port") is not None:
        return checked_port("port", str(options["port"]), notes)
    return None


def checked_port(option: str, port: str, notes: list[str]) -> int | None:
    if port.isdigit() and 0 < int(port) < 65536:
        return int(port)
    notes.append(f"{option} port {port!r} is no fixed port (1-65535): no Service")
    return None


def service(name: str, labels: dict, settings: Settings, port: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, labels, settings),
        "spec": {
            "selector": {NAME_LABEL: name},
            "ports": [{"port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


# -- probes ---------------------------------------------------------------------


def probes(app: Any, port: int | None, notes: list[str]) -> tuple[dict | None, dict | None]:
    """(livenessProbe, readinessProbe) from the health checks and ``wait_ready``."""
    options = app.options
    known = dict(app.env)
    if port is not None:
        known["PORT"] = str(port)  # corral sets PORT from listen/port over the env
    liveness = readiness = None
    for check in options.get("health") or []:
        kind = next(k for k in ("http", "tcp", "exec") if k in check)
        shown = f"health ({check['role']}) {kind} {check[kind]!r}"
        action, why = probe_action(kind, check[kind], known)
        timing = probe_timing(check, shown, notes) if action is not None else {}
        if check["role"] in ("liveness", "both"):
            if action is None:
                notes.append(f"{shown}: {why}: no livenessProbe")
            else:
                liveness = {**action, **timing, "successThreshold": 1}
                if check["success_threshold"] != 1:
                    notes.append(
                        f"{shown}: success_threshold {check['success_threshold']}: a "
                        "livenessProbe takes 1 only: 1 exported"
                    )
        if check["role"] in ("readiness", "both"):
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


def probe_action(kind: str, value: Any, known: dict[str, str]) -> tuple[dict | None, str]:
    """The probe's handler (httpGet, tcpSocket, exec), or None and why not."""
    missing = sorted({m for m in _VARIABLE.findall(str(value)) if m not in known})
    if missing:
        return None, f"${{{missing[0]}}} is not known before the pod runs"
    value = _expand(value, known)
    if kind == "exec":
        command = ["/bin/sh", "-c", value] if isinstance(value, str) else list(value)
        return {"exec": {"command": command}}, ""
    if kind == "http":
        parts = urlsplit(value)
        try:
            target_port = parts.port or 80
        except ValueError:
            return None, "its port is not a number"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        action: dict[str, Any] = {"path": path, "port": target_port}
        return {"httpGet": _with_host(action, parts.hostname)}, ""
    host, _, port_text = value.strip().rpartition(":")
    if not port_text.isdigit():
        return None, "its port is not a number"
    return {"tcpSocket": _with_host({"port": int(port_text)}, host.strip("[]"))}, ""


def _with_host(action: dict[str, Any], host: str | None) -> dict[str, Any]:
    """The kubelet probes the pod's IP: a loopback host means that one."""
    if host and host not in LOOPBACK:
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


# -- cron -----------------------------------------------------------------------


def cron_of(options: dict[str, Any]) -> str | None:
    """The app's cron_restart, or None (``0`` and ``""`` disable it, as in PM2)."""
    cron = options.get("cron_restart")
    if cron is None or str(cron).strip() in ("", "0"):
        return None
    return str(cron).strip()


def cron_schedule(cron: str) -> str | None:
    """A CronJob schedule for ``cron``, or None: Kubernetes has no seconds field
    (a leading ``0`` is dropped) and none of croner's L, W, #."""
    if cron.startswith("@"):
        return cron.lower() if cron.lower() in CRON_NICKNAMES else None
    fields = cron.split()
    if len(fields) == 6 and fields[0] in ("0", "00"):
        fields = fields[1:]
    if len(fields) != 5 or any(c in cron.upper() for c in "LW#"):
        return None
    return " ".join(fields)


# -- options Kubernetes cannot carry --------------------------------------------


def warn_unmapped(app: Any, notes: list[str]) -> None:
    """A note for each option set that has no Kubernetes equivalent."""
    options = app.options
    if options.get("watch"):
        notes.append(
            "watch has no Kubernetes equivalent (a pod's files come from its image): "
            "not exported; build and roll out a new image instead"
        )
    if options.get("depends_on"):
        notes.append(
            "depends_on has no Kubernetes equivalent (pods start in any order): not "
            "exported; wait for the dependency in the app or an init container"
        )
    if options.get("stop_exit_codes") and options.get("autorestart", True):
        notes.append(
            "stop_exit_codes has no Kubernetes equivalent (a Deployment restarts its "
            "pod whatever the exit code): not exported"
        )
    if options.get("increment_var") and isinstance(app.instances, int) and app.instances > 1:
        notes.append(
            f"increment_var {options['increment_var']!r}: every pod runs instance 0, "
            "so each gets the same value"
        )


__all__ = ["corral_exporters", "kubernetes_name", "render"]
