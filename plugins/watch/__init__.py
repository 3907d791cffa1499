"""watch: restart an app when its files change (PM2's ``watch``), on watchdog.

Options (per app):

- ``watch``: ``true`` (or ``[]``) watches the app's ``cwd``; a list watches
  those paths and globs, relative to ``cwd`` (``["src", "config/*.toml"]``).
  In a glob ``*`` and ``?`` stay within one path part and ``**`` spans any
  number of them. Default ``false``.
- ``ignore_watch``: globs never watched. A pattern without ``/`` is matched
  against each part of the path below what is watched (``node_modules``,
  ``*.pyc``), one with ``/`` against the path relative to ``cwd``. Given, it
  replaces the default, as in PM2: ``.*`` (dot files and directories: ``.git``,
  ``.venv``, editor swap files), ``node_modules``, ``__pycache__``, ``*.pyc``.
- ``watch_delay``: milliseconds of quiet after the last change of a burst
  before the restart (default 0; at least 50 ms are always waited, which
  gathers the files one save or one ``git checkout`` writes into one restart).
- ``watch_options``: ``follow_symlinks`` (false), ``use_polling`` (false; for
  network filesystems, where inotify sees nothing) and ``interval`` (ms between
  polls, default 100). PM2's camelCase (``usePolling``) is accepted; chokidar's
  other keys are kept and ignored with a warning in corral.log.

An app's own log and pid files (and rotated copies beside them) and
``CORRAL_HOME`` are never watched, whatever ``ignore_watch`` says, so an app
writing its logs into its ``cwd`` does not restart itself forever.

There is one watcher per app name: a change restarts every instance of the
app once (a graceful restart; cluster apps sharing a socket are reloaded). A
stop or delete through a client stops watching that instance until it is
started again (a start or restart; ``pm2_env.watch`` shows false meanwhile, as
PM2's does); ``corral watch stop NAME`` stops watching an app until
``corral watch start NAME`` (or ``corral restart NAME --watch``), which also
turns watching on for an app started without ``watch``. Watching is armed
before the ``start``/``restart`` that asked for it returns: a file written
right after the reply restarts the app.

RPC: ``watch_toggle(name, on)`` and ``watch_status()``; CLI: ``corral watch``
(a status table), ``corral watch start NAME``, ``corral watch stop NAME``.

Modules: :mod:`.options` (``watch_options``), :mod:`.filters` (what is watched
and ignored), :mod:`.observer` (watchdog), :mod:`.debounce` (one app name's
restarts), :mod:`.watchers` (the per-daemon watchers), :mod:`.cli`.
"""

from __future__ import annotations

from typing import Any

import corral

from .cli import corral_cli, status_lines
from .filters import MIN_QUIET_MS, Entry, WatchSettings, glob_regex, settings_for
from .options import DEFAULT_IGNORE, normalize_watch_options, watching
from .watchers import Watcher

__all__ = [
    "DEFAULT_IGNORE",
    "MIN_QUIET_MS",
    "Entry",
    "WatchSettings",
    "Watcher",
    "corral_cli",
    "glob_regex",
    "normalize_watch_options",
    "settings_for",
    "status_lines",
    "watch_status",
    "watch_toggle",
    "watcher",
    "watching",
]

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

STATE_KEY = "watch.watcher"  # where each daemon keeps its Watcher (DaemonAPI.state)


@corral.hookimpl
def corral_app_options() -> list[corral.Option]:
    return [
        corral.Option(
            "watch",
            "bool_or_list",
            False,
            help="restart on file changes: true watches the app's cwd, or give paths and "
            "globs relative to it",
        ),
        corral.Option(
            "ignore_watch",
            "list",
            DEFAULT_IGNORE,
            help="globs never watched; replaces the default (.* node_modules __pycache__ *.pyc)",
        ),
        corral.Option(
            "watch_delay", "ms", 0, help="quiet time after the last change before the restart"
        ),
        corral.Option(
            "watch_options",
            "any",
            help="watcher settings: follow_symlinks, use_polling (network filesystems),"
            " interval (ms)",
            validate=normalize_watch_options,
        ),
    ]


# -- hooks -----------------------------------------------------------------------


def watcher(daemon: Any) -> Watcher:
    """The :class:`Watcher` of ``daemon`` (a ``corral.api.DaemonAPI``), made on first use:
    two daemons in one process each watch their own apps."""
    return daemon.state(STATE_KEY, lambda: Watcher(daemon))


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    if watcher(daemon).closed:  # the same daemon started again: fresh watchers
        daemon.forget_state(STATE_KEY)
    watcher(daemon).running = True


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    watcher(daemon).close()  # kept, closed: a late event watches nothing


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    watcher(daemon).on_event(event)


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"watch_toggle": watch_toggle, "watch_status": watch_status}


def _running(daemon: Any) -> Watcher:
    running = watcher(daemon)
    if not running.running:
        raise corral.PluginError("the watch plugin is not running in this daemon")
    return running


async def watch_toggle(daemon: Any, name: str, on: bool = True) -> list[dict[str, Any]]:
    """Start or stop watching the app ``name`` (or ``"all"``); returns their status."""
    if not isinstance(name, str) or not name:
        raise corral.OptionError(f"name must be an app name or 'all', got {name!r}", field="name")
    return await _running(daemon).toggle(name, bool(on))


def watch_status(daemon: Any) -> list[dict[str, Any]]:
    """Per app name: watching, paths, ignore, delay, restarts, events seen and ignored."""
    return _running(daemon).status()
