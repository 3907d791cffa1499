"""logrotate: rotate the app logs and corral.log by size and by cron, keep N, gzip.

PM2 needs the separate pm2-logrotate module, which copies a file and then
truncates it, so lines written in between are lost. Here a rotation is a
rename followed by a reopen of the same path, both on the daemon's event loop
between two writes: the daemon writes whole lines synchronously on that loop,
so no line can be lost, duplicated or torn by a rotation.

Daemon-wide settings live in ``$CORRAL_HOME/logrotate.json`` (read when the
daemon starts; ``corral logrotate set KEY VALUE`` writes it and applies the
change at once, ``corral logrotate show`` prints it). PM2's keys and defaults:

- ``max_size`` (10M): rotate a file when it reaches this size; K, M, G
  suffixes (powers of 1024); 0 turns size rotation off.
- ``retain`` (30): rotated files kept per log, the oldest deleted first;
  ``all`` keeps every one.
- ``compress`` (false): gzip each rotated file to ``.gz``, off the loop.
- ``date_format`` (``YYYY-MM-DD_HH-mm-ss``, PM2's ``dateFormat``): the date in
  rotated names, ``<path minus .log>__<date>.log`` as pm2-logrotate names them
  (``__<n>`` is added before ``.log`` when that name is taken).
- ``rotate_interval`` (``0 0 * * *``, PM2's ``rotateInterval``): a cron
  expression (six fields: seconds first) at which every non-empty file is
  rotated; ``off`` turns it off.
- ``rotate_module`` (true, PM2's ``rotateModule``): rotate corral.log too.
- ``worker_interval`` (30, seconds, PM2's ``workerInterval``): how often the
  size of corral.log is checked (app logs are checked as they are written).

App options override the first three per app: ``logrotate_max_size``,
``logrotate_retain`` and ``logrotate_compress``.

RPC commands: ``logrotate_show``, ``logrotate_set(key, value)``,
``logrotate_rotate(target=None)`` (rotate now) and ``logrotate_flush(target=None,
all=False)`` (truncate the current files, and with ``all`` delete the rotated
ones). CLI: ``corral logrotate show|set|rotate|flush``.

``reload_logs`` (PM2's ``reloadLogs``: ``corral reloadLogs``, ``pm.reload_logs()``)
is this plugin's too: the RPC command reopens every app log and corral.log by its
name, after an external ``mv``; a detached daemon does the same on ``SIGUSR2``.
Without the plugin the client call raises PluginError, and the daemon logs and
ignores SIGUSR2.

Modules: :mod:`.settings` (logrotate.json), :mod:`.files` (rotated names, gzip,
retention), :mod:`.rotator` (the per-daemon rotator), :mod:`.cli`.
"""

from __future__ import annotations

import signal
from typing import Any

import corral

from .cli import corral_cli
from .files import compress, delete_rotated, finish, prune, rotated_files, rotated_name
from .rotator import Rotator
from .settings import KEYS, SETTINGS_FILE, Settings, parse_setting, read_settings, retain_value

__all__ = [
    "KEYS",
    "SETTINGS_FILE",
    "Rotator",
    "Settings",
    "compress",
    "corral_cli",
    "delete_rotated",
    "finish",
    "parse_setting",
    "prune",
    "read_settings",
    "reload_logs",
    "retain_value",
    "rotated_files",
    "rotated_name",
]

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

STATE = "logrotate"  # the daemon's state key of its Rotator
REOPEN_SIGNAL = signal.SIGUSR2  # PM2's: reopen every log


# -- hooks -------------------------------------------------------------------


def rotator_of(daemon: Any) -> Rotator:
    rotator = daemon.state(STATE, lambda: None)
    if rotator is None:
        daemon.forget_state(STATE)
        raise corral.PluginError("logrotate is not running in this daemon (see corral.log)")
    return rotator


def _select(daemon: Any, target: Any) -> list[Any] | None:
    """None for every app and corral.log; else the apps a pm_id, name or namespace names."""
    if target is None or target == "all":
        return None
    if isinstance(target, list):
        chosen = {id(a): a for item in target for a in _select(daemon, item) or []}
        return list(chosen.values())
    procs = daemon.processes()
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        found = [p for p in procs if p.pm_id == int(target)]
    else:
        found = [p for p in procs if p.name == target] or [
            p for p in procs if p.options.get("namespace") == target
        ]
    if not found:
        raise corral.NotFoundError(
            f"no process has the name, pm_id or namespace {target!r}; `corral ls` lists them"
        )
    return found


@corral.hookimpl
def corral_app_options() -> list[Any]:
    return [
        corral.Option(
            "logrotate_max_size",
            "bytes",
            None,
            minimum=0,
            help="rotate this app's logs at this size (default: logrotate max_size; 0 = never)",
        ),
        corral.Option(
            "logrotate_retain",
            "any",
            None,
            help="rotated files kept per log, or 'all' (default: logrotate retain)",
            validate=lambda value: retain_value(value, "logrotate_retain"),
        ),
        corral.Option(
            "logrotate_compress",
            "bool",
            None,
            help="gzip this app's rotated logs (default: logrotate compress)",
        ),
    ]


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    # first: SIGUSR2 reopens the logs even if the settings cannot be read
    daemon.handle_signal(REOPEN_SIGNAL, lambda: reload_logs(daemon))
    daemon.forget_state(STATE)
    daemon.state(STATE, lambda: Rotator(daemon)).start()


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    daemon.release_signal(REOPEN_SIGNAL)
    rotator = daemon.forget_state(STATE)
    if rotator is not None:
        rotator.stop()


@corral.hookimpl
def corral_log_chunk(daemon: Any, app: Any, stream: str, data: bytes) -> None:
    rotator = daemon.state(STATE, lambda: None)
    if rotator is not None:
        rotator.on_chunk(app, stream, data)


def reload_logs(daemon: Any) -> list[str]:
    """Reopen every app log and corral.log by its name, after an external ``mv``; returns
    the app logs reopened. PM2's ``reloadLogs``; SIGUSR2 to a detached daemon does it too."""
    reopened = [str(path) for path in daemon.reopen_app_logs()]
    daemon.reopen_daemon_log()
    daemon.log.info("reopened logs", count=len(reopened))
    return reopened


def logrotate_show(daemon: Any) -> dict[str, Any]:
    """The settings in effect, the file they are stored in, and the rotations so far."""
    return rotator_of(daemon).show()


def logrotate_set(daemon: Any, key: str, value: Any) -> dict[str, Any]:
    """Change one setting, store it in logrotate.json and apply it now."""
    return rotator_of(daemon).set(key, value)


async def logrotate_rotate(daemon: Any, target: Any = None) -> list[dict[str, Any]]:
    """Rotate every non-empty log of ``target`` now (no target: every app and corral.log);
    returns ``[{rotated, deleted}]`` once compression and retention are done."""
    rotator = rotator_of(daemon)
    procs = _select(daemon, target)
    return await rotator.wait(rotator.rotate_all(procs, daemon_log=procs is None))


async def logrotate_flush(daemon: Any, target: Any = None, all: bool = False) -> dict[str, Any]:
    """Truncate ``target``'s logs (no target: every app's and corral.log), as ``flush``;
    with ``all``, delete their rotated files too."""
    rotator = rotator_of(daemon)
    procs = _select(daemon, target)
    return await rotator.flush(procs, bool(all))


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {
        "logrotate_show": logrotate_show,
        "logrotate_set": logrotate_set,
        "logrotate_rotate": logrotate_rotate,
        "logrotate_flush": logrotate_flush,
        "reload_logs": reload_logs,
    }
