"""The Kubernetes exporter's workload: a Deployment, a Job or a CronJob for an app."""

from __future__ import annotations

from typing import Any

from .kubernetes_cron import cron_of, schedule_of
from .kubernetes_names import NAME_LABEL, metadata
from .kubernetes_settings import Settings


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
    schedule, why = schedule_of(cron) if cron else (None, "")
    if cron and schedule is None:
        notes.append(
            f"cron_restart {cron!r}: {why} has no CronJob schedule (5 fields, no seconds, "
            "names, or @hourly...): exported as a Job that runs once"
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
    # autostart false: corral's cron still arms the job, and each tick starts the app
    # (plugins/cron: corral_process_added), as a CronJob runs it at its ticks: not
    # suspended. autostart true: corral also runs it once at start, which a CronJob does not
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
        if isinstance(count, int) and count < 0:
            per_cpu = f"{count} (one per CPU but {-count}: CPUs - {-count})"
        else:
            per_cpu = f"{count} or max (one per CPU)"
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
