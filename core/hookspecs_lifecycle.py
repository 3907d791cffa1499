"""The hooks of an app's life: its options, its spawn, its events, its output and messages.

The specs of one area of the contract; ``corral.hookspecs`` says what every hook
shares and lists the spec modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.hookspecs import hookspec

if TYPE_CHECKING:
    from corral import Option, ProcessEvent
    from corral.api import DaemonAPI, Process, SpawnSpec


@hookspec
def corral_app_options() -> list[Option]:
    """Declare the app options a plugin adds.

    Runs in every process that validates options (the daemon, and the CLI to
    build its flags), once when the plugin is loaded. Return a list of
    :class:`corral.Option`; the core validates every option in one place, and
    an option whose plugin is not loaded is refused with the plugin's name.
    Results from all plugins are concatenated; a name declared twice is an error.

    Example::

        import re

        import corral


        def check_team(value):
            # the plugin's own check, after the core has made the value a str
            if not re.fullmatch(r"[a-z0-9-]+", value):
                raise ValueError(f"use lowercase letters, digits and '-', got {value!r}")
            return value


        @corral.hookimpl
        def corral_app_options():
            return [
                corral.Option("team", "str", help="who owns the app", validate=check_team),
                corral.Option("page_after", "int", 3, minimum=1, help="crashes before paging"),
            ]

    .. versionadded:: 0.1
    """


@hookspec
def corral_process_added(daemon: DaemonAPI, app: Process) -> None:
    """A process slot was added: by start (also with ``autostart: false``), scale,
    resurrect, or the recovery of a dead daemon's apps.

    Runs in the daemon, on the event loop, before the slot's first spawn. ``app``
    has its pm_id, name and options. Use it to set up per-app state (a cron job,
    a watcher) that must exist even for an app that is not running. Must not block.

    Example::

        import corral

        restarts = {}  # pm_id -> restarts counted by this plugin, for every app, running or not


        @corral.hookimpl
        def corral_process_added(app):
            restarts.setdefault(app.pm_id, 0)


        @corral.hookimpl
        def corral_process_event(event):
            if event.event == "restart":
                restarts[event.pm_id] = restarts.get(event.pm_id, 0) + 1
            elif event.event == "delete":
                restarts.pop(event.pm_id, None)

    .. versionadded:: 0.1
    """


@hookspec
def corral_validate_app(options: dict[str, Any], interpreter: str) -> None:
    """Refuse an app whose options do not fit it, before anything starts.

    Runs in the daemon for each app of a ``start`` (its options validated, its
    script and interpreter resolved, nothing running yet) and for each process
    a ``restart`` or ``reload`` gives new options, with the options it would
    have. ``options`` are canonical and read-only; ``interpreter`` is the
    interpreter's path, or ``"none"``. Raise :class:`corral.OptionError` naming
    the field and the fix: the command fails with it and nothing changes. Any
    other exception fails the command with a PluginError naming the plugin.

    Example::

        import corral


        @corral.hookimpl
        def corral_validate_app(options, interpreter):
            if options.get("source_map_support") and "node" not in interpreter:
                raise corral.OptionError(
                    "source_map_support is for node apps", field="source_map_support"
                )

    .. versionadded:: 0.1
    """


@hookspec
def corral_before_spawn(daemon: DaemonAPI, app: Process, spawn: SpawnSpec) -> None:
    """An app is about to be executed; change how.

    Runs in the daemon, on the event loop, for every spawn (start, restart,
    resurrect, each new child of a reload). May mutate ``spawn.argv``,
    ``spawn.env``, ``spawn.cwd`` and ``spawn.pass_fds``; ``app`` is read-only
    here. Must not block. An implementation that raises is logged and the spawn
    goes on without its change.

    Two more things it may ask for this spawn: ``spawn.hold_ready(name, bound)``
    makes the child's readiness (``start --wait-ready``, reload) wait, besides its
    own signal, until the plugin calls ``open()`` on the gate it returns (on the
    loop), at most ``bound`` seconds or ``listen_timeout``, whichever is longer;
    ``spawn.when_spawned(callback)`` calls ``callback(pid)`` on the loop right
    after the fork (not at all if it fails). The health plugin's readiness check
    is both.

    Example::

        import corral


        @corral.hookimpl
        def corral_app_options():
            return [corral.Option("unbuffered", "bool", False, help="set PYTHONUNBUFFERED=1")]


        @corral.hookimpl
        def corral_before_spawn(app, spawn):
            spawn.env["APP_NAME"] = app.name
            if app.options.get("unbuffered"):
                spawn.env["PYTHONUNBUFFERED"] = "1"

    .. versionadded:: 0.1
    """


@hookspec
def corral_process_event(daemon: DaemonAPI, event: ProcessEvent) -> None:
    """A process changed state, or something happened to it.

    Runs in the daemon after the change is recorded, on the plugin's own
    thread, in order (on the event loop instead when the plugin declares
    ``corral_runs_on_loop = True``, and then it must not block), so a slow
    observer never delays the daemon. ``event.event`` is PM2's word
    (``start``, ``online``, ``exit``, ``restart``, ``stop``, ``delete``,
    ``restart overlimit``) and
    ``event.process`` the process as ``to_dict()`` shows it (without ``env``).
    Observers only: the return value is ignored.

    Example::

        import json
        import threading
        import urllib.request

        import corral

        WEBHOOK = "https://hooks.example.com/corral"


        def post(payload):
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json"}
            urllib.request.urlopen(urllib.request.Request(WEBHOOK, body, headers), timeout=10)


        @corral.hookimpl
        def corral_process_event(event):
            if event.event in ("exit", "restart overlimit") and not event.manually:
                # a network call blocks: it runs on a thread, never on the event loop
                threading.Thread(target=post, args=(event.to_dict(),), daemon=True).start()

    .. versionadded:: 0.1
    """


@hookspec
def corral_log_chunk(daemon: DaemonAPI, app: Process, stream: str, data: bytes) -> None:
    """An app wrote output; ``stream`` is ``"out"`` or ``"err"``.

    Runs in the daemon right after ``data`` (whole lines; or a partial line
    held 0.1 s without its newline, or left when the app exits; a line over
    1 MiB comes cut in pieces) was written to the log file, on the plugin's own
    thread (on the event loop with ``corral_runs_on_loop = True``). Called for
    every chunk, so it should be cheap: while a plugin has 1000 calls or 8 MiB
    of log data waiting, newer chunks are dropped for it (counted in
    ``corral plugins --errors``; the log file still has them) until it catches up.

    Example::

        import collections

        import corral

        error_lines = collections.Counter()  # app name -> lines written on stderr


        @corral.hookimpl
        def corral_log_chunk(app, stream, data):
            if stream == "err":
                error_lines[app.name] += len(data.splitlines())


        @corral.hookimpl
        def corral_rpc_commands():
            return {"error_lines": lambda daemon: dict(error_lines)}

    .. versionadded:: 0.1
    """


@hookspec
def corral_process_message(daemon: DaemonAPI, app: Process, message: Any) -> None:
    """A child sent a message on its channel.

    Runs in the daemon, on the plugin's own thread (on the event loop with
    ``corral_runs_on_loop = True``), for every JSON value a child sends
    (``corral.child.send()``, node's ``process.send()``) except the ones the
    core consumes itself: ``"ready"``, the node preload's ``corral:listening``
    report and node's internal ``NODE_*`` traffic. ``message`` is the decoded
    value: PM2's ``{"type": "process:msg", "data": ..., "topic": ...}``, a
    ``{"type": "process:exception", ...}`` report, or anything else the app
    sent. Observers only: the return value is ignored. Like log chunks,
    messages are dropped for a plugin with 1000 calls waiting, and counted.

    Example::

        import corral

        progress = {}  # app name -> the last progress its child reported


        @corral.hookimpl
        def corral_process_message(app, message):
            # the child ran: corral.child.send({"done": 10, "total": 40}, topic="progress")
            if isinstance(message, dict) and message.get("topic") == "progress":
                progress[app.name] = message.get("data")

    .. versionadded:: 0.1
    """


@hookspec
def corral_notify(daemon: DaemonAPI, app: Process, pid: int, fields: dict[str, str]) -> None:
    """A child's process tree sent an sd_notify datagram (``NOTIFY_SOCKET``).

    ``fields`` are its assignments (``{"WATCHDOG": "1"}``, ``{"STATUS": "warming up"}``);
    ``pid`` is the child's whose tree sent it, as the kernel vouches for the sender
    (``SO_PASSCRED``), never the text. ``READY=1`` has made the child ready already.
    A node app, which has no unix datagrams, sends the same text on its channel:
    ``process.send({type: "corral:notify", data: "WATCHDOG=1"})``. Runs in the
    daemon like :func:`corral_process_message` (the plugin's thread, or the loop with
    ``corral_runs_on_loop = True``; dropped for a plugin with 1000 calls waiting).

    Example::

        import corral

        statuses = {}  # app name -> the last STATUS= it sent


        @corral.hookimpl
        def corral_notify(app, fields):
            if "STATUS" in fields:
                statuses[app.name] = fields["STATUS"]

    .. versionadded:: 0.2
    """


@hookspec
def corral_validate_start(daemon: DaemonAPI, apps: list[dict[str, Any]]) -> None:
    """Refuse a start whose apps, together, do not fit (a dependency cycle, say).

    Runs in the daemon once per ``start`` (a script, a command or a config file's
    apps), after each app's options were validated and before anything is
    registered or started. ``apps`` holds one ``{"name", "options"}`` per app of the
    start (``options`` canonical, read-only); ``daemon.processes()`` are the apps
    there already. Raise :class:`corral.OptionError` naming the field and the apps:
    the start fails with it and nothing changes.

    Example::

        import corral


        @corral.hookimpl
        def corral_validate_start(daemon, apps):
            teams = {app["options"].get("team") for app in apps}
            if len(teams) > 1:
                raise corral.OptionError("one start, one team", field="team")

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def corral_hold_launch(daemon: DaemonAPI, app: Process) -> str | None:
    """An app of a start (or a resurrect) is about to be launched for the first time:
    return a reason to hold it back instead (``"waiting for db (healthy)"``).

    Runs in the daemon, on the loop, once per new process, and for a stopped app a
    ``restart`` (``start NAME``, ``start all``) starts; the first plugin that returns
    a string wins. A held process stays ``stopped``, registered, its reason in
    ``describe``; the plugin launches it later with ``await
    daemon.start_process(app, reason=...)``. Must not block.

    Example::

        import corral

        held = {}  # pm_id -> the app held until night comes


        @corral.hookimpl
        def corral_hold_launch(daemon, app):
            if app.options.get("night_only"):
                held[app.pm_id] = app
                return "waiting for the night"


        async def at_night(daemon):  # a timer of the plugin's, on the loop
            for app in held.values():
                await daemon.start_process(app, reason="night came")

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def corral_stop_order(daemon: DaemonAPI, apps: list[Process]) -> list[list[Process]] | None:
    """The order a ``stop`` of several processes takes: waves, each stopped together,
    one wave after the other (the depends plugin: an app before the apps it needs).

    Runs in the daemon, on the loop, once per ``stop``; the first plugin that answers
    wins. Return every process of ``apps`` once, or None for the default, one wave.
    A list that drops or repeats a process is ignored. Must not block.

    Example::

        import corral


        @corral.hookimpl
        def corral_stop_order(apps):
            # the workers first, so the queue they read is still there as they finish
            workers = [a for a in apps if a.name.startswith("worker")]
            return [workers, [a for a in apps if a not in workers]]

    .. versionadded:: 0.2
    """
