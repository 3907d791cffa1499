"""The systemd exporter's warnings: each option set that no unit line maps, and each
mapping whose semantics differ from corral's.

The option by option mapping, and why, is in docs/plugins/export-systemd.md.
"""

from __future__ import annotations

from typing import Any

from .systemd_command import is_bare_command, is_node_app
from .systemd_listen import listen_host, listen_port
from .systemd_plan import AppUnits, depends_on
from .systemd_quoting import seconds

# options this exporter maps (or that only mean something through one it maps)
MAPPED = frozenset(
    (
        "script name cwd args node_args exec_interpreter exec_mode instances env filter_env "
        "autorestart autostart stop_exit_codes restart_delay exp_backoff_restart_delay "
        "max_restarts min_uptime kill_signal kill_timeout treekill wait_ready listen_timeout "
        "on_listen_timeout uid gid port instance_var increment_var out_file error_file "
        "log_file disable_logs merge_logs watchdog max_memory_restart memory_interval "
        "memory_max cpu_max pids_max depends_on cron_restart cron_tz watch ignore_watch listen "
        "watch_delay watch_options"
    ).split()
)
# an unmapped option at one of these values is not set (other options: None, False, empty)
DEFAULTS: dict[str, Any] = {"namespace": "default"}


def app_warnings(app: Any, by_name: dict[str, AppUnits]) -> list[str]:
    """One warning per option set that no line maps, per mapping that differs, and per
    ``depends_on`` that cannot be exported as it is; each names the app."""
    warnings = []
    options = app.options
    for key in sorted(options):
        value = options[key]
        if key in MAPPED or key.startswith("env_") or not _is_set(key, value):
            continue
        warnings.append(f"{app.name}: {key} has no systemd equivalent: not exported")
    for message in _approximations(app, by_name[app.name]):
        warnings.append(f"{app.name}: {message}")
    for name, condition in depends_on(app).items():
        other = by_name.get(name)
        if other is None:
            warnings.append(f"{app.name}: depends_on {name}: not an app of this file: not exported")
        elif condition == "healthy" and not other.app.options.get("wait_ready"):
            warnings.append(
                f"{app.name}: depends_on {name}: healthy is exported as started "
                f"({name} has no wait_ready, and health checks have no systemd equivalent)"
            )
    return warnings


def _is_set(key: str, value: Any) -> bool:
    if key in DEFAULTS:
        return value != DEFAULTS[key]
    return value not in (None, False, "", 0, [], (), {})


def _listen_note(options: dict[str, Any], units: AppUnits) -> str:
    """Why a ``listen`` has no socket unit, and what the app gets instead: a node app
    (corral passes it the socket through its shim, which systemd has not) binds the
    port of PORT itself, as corral sets PORT from listen for every app."""
    listen = options["listen"]
    if not is_node_app(options):
        return (
            f"listen {listen}: no socket unit (a port 0 or a relative path cannot be one): "
            "not exported"
        )
    head = f"listen {listen}: no socket unit (corral's node shim is not there under systemd)"
    port = listen_port(options)
    if port is None:
        return f"{head}: not exported; the app must listen on it itself"
    note = f"{head}: PORT={port} is set, the app must listen on it itself"
    host = listen_host(options)
    if host:
        note += f", on {host}"
    if units.count > 1:
        note += f"; its {units.count} instances each bind it: use SO_REUSEPORT, or one instance"
    return note


def restart_sec_ms(options: dict[str, Any]) -> int:
    """The delay before a restart, as RestartSec= holds it: the backoff's first delay when
    there is one (corral's backoff wins over ``restart_delay``), else ``restart_delay``."""
    return int(options.get("exp_backoff_restart_delay") or options.get("restart_delay") or 0)


def _cluster_note(options: dict[str, Any]) -> str:
    """Cluster mode's shared port, and what gives each instance a port of its own: the
    advice of increment_var only to an app that has none."""
    head = "cluster mode's shared port has no systemd equivalent: each instance binds its own"
    var = options.get("increment_var")
    if not var:
        return f"{head}; give them distinct ports (increment_var: PORT) or SO_REUSEPORT"
    fixed = listen_port(options)
    which = "listen's port"
    if fixed is None and options.get("port") is not None:
        fixed, which = options["port"], "the port option's"
    if var == "PORT" and fixed is not None:  # corral sets PORT after increment_var
        return (
            f"{head}; PORT is {which} ({fixed}) in every instance, over increment_var PORT, "
            "as under corral: give them distinct ports or SO_REUSEPORT"
        )
    if var == "PORT":
        return (
            f"{head}; increment_var PORT gives each its own PORT: a port fixed in the code "
            "needs SO_REUSEPORT"
        )
    return (
        f"{head}; give them distinct ports (increment_var {var} gives each its own {var}, "
        "if that is the port) or SO_REUSEPORT"
    )


def _approximations(app: Any, units: AppUnits) -> list[str]:
    """What is exported with other semantics than corral's, or not at all, said once."""
    options = app.options
    notes = []
    if options.get("watch"):
        notes.append("watch has no systemd equivalent (.path units do not recurse): not exported")
    if options.get("listen") and not units.socket:
        notes.append(_listen_note(options, units))
    if options.get("exec_mode") == "cluster" and units.count > 1:
        notes.append(_cluster_note(options))
    if options.get("max_memory_restart") and (
        not options.get("memory_max") or options["max_memory_restart"] < options["memory_max"]
    ):
        notes.append(
            "max_memory_restart is exported as MemoryMax=: past it the kernel kills the app "
            "(SIGKILL, no graceful stop) and Restart= starts it again"
        )
    if options.get("exp_backoff_restart_delay"):
        note = (
            "exp_backoff_restart_delay: systemd < 254 has no backoff: exported as a fixed "
            f"RestartSec= of its first delay ({seconds(options['exp_backoff_restart_delay'])})"
        )
        if options.get("restart_delay"):
            note += (
                f"; restart_delay {seconds(options['restart_delay'])} is not used, as under "
                "corral, where the backoff wins over it"
            )
        notes.append(note)
    if options.get("wait_ready") and is_node_app(options):
        notes.append(
            "wait_ready: under systemd a node app says ready with sd_notify READY=1 "
            "(process.send('ready') needs corral's channel)"
        )
    if options.get("watchdog") and is_node_app(options):
        notes.append(
            "watchdog: under systemd a node app beats with sd_notify WATCHDOG=1 "
            "(process.send({type: 'corral:notify'}) needs corral's channel)"
        )
    if is_bare_command(options):
        notes.append(
            f"script {options['script']} is taken as a command on systemd's search path "
            "(/usr/local/bin, /usr/bin, ...): write ./" + str(options["script"]) + " for a file "
            "of the cwd"
        )
    if options.get("on_listen_timeout") not in (None, "rollback") and options.get("wait_ready"):
        notes.append("on_listen_timeout has no systemd equivalent: not exported")
    if units.cron and not options.get("autorestart") and units.oneshot:
        notes.append("cron_restart of a job another app waits for: restarted by its timer")
    return notes
