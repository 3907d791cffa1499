"""The hooks corral calls: the whole contract between the core and its plugins.

Every hook is keyword-only; an implementation asks only for the arguments it
needs. Each implementation is called on its own: if one raises, the error is
logged with the plugin's name in ``corral.log`` and kept for ``corral plugins
--errors``, and the other implementations still run. ``tryfirst`` and
``trylast`` are honoured; hook wrappers are not used by corral.

The docs in ``docs/hooks.md`` are generated from these docstrings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .daemon import Daemon
    from .events import ProcessEvent
    from .options import Option
    from .process import ManagedProcess, SpawnSpec

hookspec = pluggy.HookspecMarker("corral")
hookimpl = pluggy.HookimplMarker("corral")


@hookspec
def corral_app_options() -> list[Option]:
    """Declare the app options a plugin adds.

    Runs in every process that validates options (the daemon, and the CLI to
    build its flags), once when the plugin is loaded. Return a list of
    :class:`corral.Option`; the core validates every option in one place, and
    an option whose plugin is not loaded is refused with the plugin's name.
    Results from all plugins are concatenated; a name declared twice is an error.

    .. versionadded:: 0.1
    """


@hookspec
def corral_daemon_start(daemon: Daemon) -> None:
    """The daemon is up and serving; start the plugin's own services.

    Runs in the daemon, on the event loop, after the RPC socket is bound and
    before saved apps are brought back. A plugin registered later (an object
    passed to ``connect(no_daemon=True, plugins=[...])`` after start) gets
    this call when it is registered, as a pluggy ``historic`` hook would.
    Must not block: start threads or asyncio tasks for slow work.

    .. versionadded:: 0.1
    """


@hookspec
def corral_daemon_stop(daemon: Daemon) -> None:
    """The daemon is shutting down; stop timers, observers and sockets.

    Runs in the daemon, on the event loop, after every app was stopped and
    before the RPC socket is closed. Must return promptly.

    .. versionadded:: 0.1
    """


@hookspec
def corral_process_added(app: ManagedProcess) -> None:
    """A process slot was added: by start (also with ``autostart: false``), scale,
    resurrect, or the recovery of a dead daemon's apps.

    Runs in the daemon, on the event loop, before the slot's first spawn. ``app``
    has its pm_id, name and options. Use it to set up per-app state (a cron job,
    a watcher) that must exist even for an app that is not running. Must not block.

    .. versionadded:: 0.2
    """


@hookspec
def corral_before_spawn(app: ManagedProcess, spawn: SpawnSpec) -> None:
    """An app is about to be executed; change how.

    Runs in the daemon, on the event loop, for every spawn (start, restart,
    resurrect). May mutate ``spawn.argv``, ``spawn.env``, ``spawn.cwd`` and
    ``spawn.pass_fds``; ``app`` is read-only here. Must not block. An
    implementation that raises is logged and the spawn goes on without its change.

    .. versionadded:: 0.1
    """


@hookspec
def corral_process_event(event: ProcessEvent) -> None:
    """A process changed state, or something happened to it.

    Runs in the daemon, on the event loop, after the change is recorded.
    ``event.event`` is PM2's word (``start``, ``online``, ``exit``,
    ``restart``, ``stop``, ``delete``, ``restart overlimit``) and
    ``event.process`` the process as ``to_dict()`` shows it (without ``env``).
    Observers only: the return value is ignored. Must not block.

    .. versionadded:: 0.1
    """


@hookspec
def corral_log_chunk(app: ManagedProcess, stream: str, data: bytes) -> None:
    """An app wrote output; ``stream`` is ``"out"`` or ``"err"``.

    Runs in the daemon, on the event loop, right after ``data`` (whole lines,
    or the last partial line when the app exits) was written to the log file.
    Called for every chunk, so it must be cheap; queue slow work elsewhere.

    .. versionadded:: 0.1
    """


@hookspec
def corral_process_message(app: ManagedProcess, message: Any) -> None:
    """A child sent a message on its channel.

    Runs in the daemon, on the event loop, for every JSON value a child sends
    (``corral.child.send()``, node's ``process.send()``) except the ones the
    core consumes itself: ``"ready"``, the node preload's ``corral:listening``
    report and node's internal ``NODE_*`` traffic. ``message`` is the decoded
    value: PM2's ``{"type": "process:msg", "data": ..., "topic": ...}``, a
    ``{"type": "process:exception", ...}`` report, or anything else the app
    sent. Observers only; must not block.

    .. versionadded:: 0.2
    """


@hookspec
def corral_rpc_commands() -> dict[str, Any]:
    """Extra RPC commands the plugin serves, as ``{name: handler}``.

    Runs in the daemon when the plugin is loaded. A handler is called as
    ``handler(daemon, **args)`` on the event loop and may be a coroutine
    function; its return value must be JSON-serialisable. A name that clashes
    with a core command or another plugin's command is an error at load.

    .. versionadded:: 0.1
    """


@hookspec
def corral_cli(group: click.Group) -> None:
    """Add commands to the ``corral`` CLI.

    Runs in the CLI process before the command line is parsed. Call
    ``group.add_command(...)``; the return value is ignored.

    .. versionadded:: 0.1
    """
