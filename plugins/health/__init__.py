"""health: liveness and readiness checks per app, as Kubernetes probes do for pods.

Option (per app), one check or a list (at most one per role)::

    health:
      http: http://127.0.0.1:${PORT}/healthz   # or tcp: 127.0.0.1:8000, or exec: "cmd args"
      role: both              # liveness, readiness, or both (the default)
      interval: 10s           # from the start of one probe to the next
      timeout: 1s             # a probe with no answer by then failed
      initial_delay: 0        # after the spawn, before the first probe
      failure_threshold: 3    # failures in a row that make it unhealthy (and restart it)
      success_threshold: 1    # passes in a row that make it healthy (and ready)

(:mod:`corral.plugins.health.config` says what each probe accepts.)

- *Liveness*: after ``failure_threshold`` failures in a row, the child is ended as
  a crash (its ``kill_signal``, SIGKILL after ``kill_timeout``) and its restart
  policy decides, as for any crash: ``autorestart``, ``restart_delay``,
  ``exp_backoff_restart_delay``, ``max_restarts``. The ``exit`` event's reason
  (``describe``'s last reason, the bus) starts with the check, the failures and
  what the last probe saw.
- *Readiness*: a child is ready (``start --wait-ready``, ``reload``,
  ``graceful_reload``, ``scale``) once its own signal came (the spawn, or the ready
  message with ``wait_ready``) and the check passed ``success_threshold`` times in a
  row; the wait lasts at most ``max(listen_timeout, initial_delay +
  failure_threshold x interval)``, and a reload whose new child is not ready by
  then is rolled back, as with ``wait_ready``.

``pm2_env.health_status`` (``describe``, ``jlist``, ``list()``; the ``health``
column of ``corral ls``) is ``{"status": "unknown" | "healthy" | "unhealthy",
"failures", "threshold", "check", "last", "checked_at"}`` for the worst check of the
current child; each change of status is an event (``healthy``, ``unhealthy``) on
the bus. The probes run on one thread with its own event loop, never on the
daemon's; an exec check runs as the app's user, in its cwd, with its environment.

RPC: ``health`` -> every check of every child, with its counters.
"""

from __future__ import annotations

from typing import Any

import corral
from corral.plugins.health.config import validate
from corral.plugins.health.monitor import HealthMonitor

# Its observer hooks only look at loop state and hand work to the health thread.
corral_runs_on_loop = True

STATE_KEY = "health.monitor"


def monitor(daemon: Any) -> HealthMonitor:
    """The :class:`HealthMonitor` of ``daemon``, made on first use."""
    return daemon.state(STATE_KEY, lambda: HealthMonitor(daemon))


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "health",
            "any",
            help="liveness and readiness checks: {http: URL | tcp: HOST:PORT | exec: CMD, "
            "role, interval, timeout, initial_delay, failure_threshold, success_threshold}",
            validate=validate,
        )
    ]


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    if monitor(daemon).stopped:  # the same daemon started again: a fresh monitor
        daemon.forget_state(STATE_KEY)
    health = monitor(daemon)
    for app in daemon.processes():  # children this daemon adopted (corral update)
        health.adopt(app)


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    monitor(daemon).stop()


@corral.hookimpl
def corral_before_spawn(daemon: Any, app: Any, spawn: Any) -> None:
    monitor(daemon).before_spawn(app, spawn)


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    health = monitor(daemon)
    health.prune(event.pm_id)
    if event.event in ("reload failed", "online"):
        app = daemon.process(event.pm_id)
        if app is not None:
            health.adopt(app)  # a rolled-back reload's old child is checked again


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"health": lambda daemon: monitor(daemon).stats()}
