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

from typing import Any

import corral

from . import Exporter, ExportRequest, ExportResult
from .kubernetes_env import config_map, secret_manifest, split_env
from .kubernetes_names import kubernetes_name, kubernetes_names, labels_of
from .kubernetes_pod import pod_spec
from .kubernetes_service import service, service_port
from .kubernetes_settings import Settings, settings_of
from .kubernetes_warnings import warn_unmapped
from .kubernetes_workload import workload

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
    (an ``&id001`` anchor is valid YAML that people and some tools trip on), a string
    of several lines as a ``|`` block (a probe's python3 code reads as code)."""
    import yaml  # deferred: only an export writes YAML

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: yaml.SafeDumper, data: str) -> Any:
        style = "|" if "\n" in data.rstrip("\n") else None  # PyYAML falls back if it must
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump_all(documents, Dumper=Dumper, sort_keys=False, width=4096)


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


__all__ = ["corral_exporters", "kubernetes_name", "render"]
