"""The hooks corral calls: the whole contract between the core and its plugins.

Every hook is keyword-only; an implementation asks only for the arguments it
needs. Each implementation is called on its own: if one raises, the error is
logged with the plugin's name in ``corral.log``, kept for ``corral plugins
--errors`` and passed to the other plugins' ``corral_plugin_error``, and the
other implementations still run. pluggy's markers mean what they mean in
pluggy: ``tryfirst`` and ``trylast`` order the calls; a ``firstresult`` hook
stops at the first answer other than None and the caller gets that one answer;
a ``historic`` hook is replayed to a plugin registered later (while the daemon
runs). Hook wrappers are not used by corral.

The observer hooks (``corral_process_event``, ``corral_process_message``,
``corral_log_chunk``) run on the plugin's own thread with a bounded backlog:
when a plugin is far behind, its log chunks and messages are dropped and
counted (``corral plugins --errors``, the ``dropped`` field of
``Client.plugins()``); process events are never dropped.

The docs in ``docs/hooks.md`` are generated from these docstrings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .api import DaemonAPI
    from .events import ProcessEvent
    from .options import Option
    from .process import ManagedProcess, SpawnSpec

# types a plugin defines for the hooks it calls: the core imports no plugin, so here
# they are only names (docs/gen_hooks.py lists where each lives)
PLUGIN_TYPES = {
    "StartupContext": "corral.plugins.startup.StartupContext",
    "StartupScript": "corral.plugins.startup.StartupScript",
}
StartupContext = Any
StartupScript = Any

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


@hookspec(historic=True)
def corral_daemon_start(daemon: DaemonAPI) -> None:
    """The daemon is up and serving; start the plugin's own services.

    Runs in the daemon, on the event loop, after the RPC socket is bound and
    before saved apps are brought back. A ``historic`` hook: a plugin
    registered while the daemon runs (``PluginManager.register()`` on an
    in-process daemon's manager) gets this call when it is registered; once the
    daemon has stopped, a new plugin does not.
    Must not block: start threads or asyncio tasks for slow work.

    Example::

        import asyncio

        import corral

        tasks = []


        async def report(daemon):
            while True:
                await asyncio.sleep(60)
                online = [p.name for p in daemon.processes() if p.state.value == "online"]
                daemon.log.info("still online", apps=online)


        @corral.hookimpl
        def corral_daemon_start(daemon):
            # on the event loop: start a task (or a thread) and return
            tasks.append(daemon.loop.create_task(report(daemon)))


        @corral.hookimpl
        def corral_daemon_stop(daemon):
            while tasks:
                tasks.pop().cancel()

    .. versionadded:: 0.1
    """


@hookspec
def corral_daemon_stop(daemon: DaemonAPI) -> None:
    """The daemon is shutting down; stop timers, observers and sockets.

    Runs in the daemon, on the event loop, after every app was stopped and
    before the RPC socket is closed. Must return promptly.

    Example::

        import threading

        import corral


        class Janitor:
            # deletes the *.tmp files apps leave in CORRAL_HOME, every minute, on a thread

            def __init__(self):
                self.stopping = threading.Event()
                self.thread = None

            def sweep(self, home):
                while not self.stopping.wait(60):
                    for path in home.glob("*.tmp"):
                        path.unlink(missing_ok=True)

            @corral.hookimpl
            def corral_daemon_start(self, daemon):
                self.stopping.clear()
                self.thread = threading.Thread(target=self.sweep, args=(daemon.home,), daemon=True)
                self.thread.start()

            @corral.hookimpl
            def corral_daemon_stop(self, daemon):
                self.stopping.set()  # wakes the thread at once: this returns promptly
                self.thread.join(timeout=5)


        janitor = Janitor()  # plugins=[janitor], or the entry point "pkg.module:janitor"

    .. versionadded:: 0.1
    """


@hookspec
def corral_process_added(daemon: DaemonAPI, app: ManagedProcess) -> None:
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
def corral_before_spawn(daemon: DaemonAPI, app: ManagedProcess, spawn: SpawnSpec) -> None:
    """An app is about to be executed; change how.

    Runs in the daemon, on the event loop, for every spawn (start, restart,
    resurrect). May mutate ``spawn.argv``, ``spawn.env``, ``spawn.cwd`` and
    ``spawn.pass_fds``; ``app`` is read-only here. Must not block. An
    implementation that raises is logged and the spawn goes on without its change.

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
def corral_log_chunk(daemon: DaemonAPI, app: ManagedProcess, stream: str, data: bytes) -> None:
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
def corral_process_message(daemon: DaemonAPI, app: ManagedProcess, message: Any) -> None:
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
def corral_plugin_error(daemon: DaemonAPI, plugin: str, hook: str, error: BaseException) -> None:
    """An implementation of ``hook`` in ``plugin`` raised ``error``.

    Runs in the daemon, on the event loop, after the error was logged in
    ``corral.log`` and kept for ``corral plugins --errors``, for every
    implementation but the failing plugin's own. Use it to report plugin
    failures elsewhere (the bus publishes them as ``corral:plugin-error``).
    An implementation that raises here is logged only, never reported again.
    Must not block.

    Example::

        import corral

        failures = {}  # plugin name -> how many of its hook calls raised


        @corral.hookimpl
        def corral_plugin_error(plugin, hook, error):
            failures[plugin] = failures.get(plugin, 0) + 1

    .. versionadded:: 0.1
    """


@hookspec
def corral_rpc_commands() -> dict[str, Any]:
    """Extra RPC commands the plugin serves, as ``{name: handler}``.

    Runs in the daemon when the plugin is loaded. A handler is called as
    ``handler(daemon, **args)`` on the event loop and may be a coroutine
    function; its return value must be JSON-serialisable. A name that clashes
    with a core command or another plugin's command is an error at load.

    Example::

        import corral


        def errored(daemon):
            return [p.name for p in daemon.processes() if p.state.value == "errored"]


        async def restart_errored(daemon, name=None):
            restarted = []
            for proc in daemon.processes():
                if proc.state.value == "errored" and name in (None, proc.name):
                    await daemon.restart_process(proc, reason="restart_errored")
                    restarted.append(proc.name)
            return restarted


        @corral.hookimpl
        def corral_rpc_commands():
            # a client calls them: corral.connect().call("restart_errored", name="web")
            return {"errored": errored, "restart_errored": restart_errored}

    .. versionadded:: 0.1
    """


@hookspec
def corral_daemon_settings(settings: dict[str, Any], source: str) -> list[str]:
    """Declare (and check) the daemon settings the plugin reads from ``corral.yaml``.

    Runs when ``$CORRAL_HOME/corral.yaml`` exists: in the daemon before it binds
    anything, and in the client before it starts a detached daemon (so a bad
    setting is told in one line, not by a dead daemon). ``settings`` is the
    whole file as a mapping, ``source`` its path, for messages. Return the keys
    the plugin owns, and raise :class:`corral.ConfigError` naming the key and
    the fix when one of your values is bad: the daemon then starts nothing. A
    key no loaded plugin declares stops the start too, naming the installed
    plugin that declares it (a setting silently ignored is a bug report later).
    Called with ``settings={}`` when the core looks for that plugin: return the
    keys all the same.

    Example::

        import corral


        @corral.hookimpl
        def corral_daemon_settings(settings, source):
            # corral.yaml:  metrics_port: 9100
            port = settings.get("metrics_port", 9100)
            if not isinstance(port, int) or not 0 < port < 65536:
                raise corral.ConfigError(f"metrics_port in {source} must be a port number")
            return ["metrics_port"]

    .. versionadded:: 0.1
    """


@hookspec
def corral_rpc_listeners(daemon: DaemonAPI) -> list[Any] | None:
    """Open more endpoints that serve the daemon's RPC commands (TCP, say).

    Runs in the daemon, on its event loop, once at start, before the local unix
    socket is bound and before any app is recovered: raise a
    :class:`corral.CorralError` and the daemon starts nothing (the message
    reaches the user unchanged). Serve with ``daemon.serve_rpc(context,
    address, options)`` (:meth:`corral.api.DaemonAPI.serve_rpc`). Return the
    listeners opened, each with an ``async close()`` the daemon awaits when it
    stops (after the last reply went out), or None.

    Example::

        import asyncio

        import zmq.asyncio

        import corral


        class Listener:
            def __init__(self, daemon, address):
                self.ctx = zmq.asyncio.Context()
                self.server = daemon.serve_rpc(self.ctx, address)
                self.task = asyncio.ensure_future(self.server.serve())

            async def close(self):
                await self.server.drain()
                self.task.cancel()
                self.server.close()
                self.ctx.destroy(linger=200)


        @corral.hookimpl
        def corral_rpc_listeners(daemon):
            # a second unix socket, for a sidecar that cannot reach $CORRAL_HOME
            return [Listener(daemon, "ipc:///run/corral-sidecar.sock")]

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def corral_client_transport(address: str, server_key: Any, client_key: Any) -> Any | None:
    """Reach a daemon at ``address`` that is not this machine's unix socket.

    Runs in the client process, in ``corral.connect(address=...)`` (or with
    ``CORRAL_ADDRESS`` set), never for the local socket: a local client loads
    no plugin. ``server_key`` and ``client_key`` are what the caller passed
    (None when not given). Return None for an address the plugin does not
    serve, else an object with ``address`` (the zmq endpoint to connect to),
    ``socket_options()`` (a dict of zmq socket options set on the client's
    DEALER socket before it connects) and ``no_answer(timeout)`` (the
    :class:`corral.DaemonError` raised when no daemon answers a ping within
    ``timeout`` seconds); raise :class:`corral.ConfigError` for a bad key. The
    core pings through it and keeps checking the daemon is alive. A
    ``firstresult`` hook: the first answer wins. With no plugin answering, the
    client raises :class:`corral.PluginError`.

    Example::

        import corral


        class Plain:
            def __init__(self, address):
                self.address = "ipc://" + address.removeprefix("sidecar://")

            def socket_options(self):
                return {}

            def no_answer(self, timeout):
                return corral.DaemonError(f"no daemon at {self.address} in {timeout} s")


        @corral.hookimpl
        def corral_client_transport(address):
            if address.startswith("sidecar://"):
                return Plain(address)
            return None

    .. versionadded:: 0.1
    """


@hookspec
def corral_cli(group: click.Group) -> None:
    """Add commands to the ``corral`` CLI.

    Runs in the CLI process before the command line is parsed. Call
    ``group.add_command(...)``; the return value is ignored.

    Example::

        import click

        import corral


        @corral.hookimpl
        def corral_cli(group):
            @click.command("errored", help="List the apps in the errored state.")
            @click.option("--restart", is_flag=True, help="Restart them too.")
            def errored(restart):
                pm = corral.connect()
                for info in pm.list():
                    if info.status == "errored":
                        click.echo(f"{info.pm_id} {info.name} (exit code {info.exit_code})")
                        if restart:
                            pm.restart(info.pm_id)

            group.add_command(errored)

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def corral_bus_subscriber(address: str, topics: list[str] | None) -> Any:
    """Open a subscriber to the daemon's bus: what ``launch_bus()`` returns.

    Runs in the client process, never in the daemon, when ``Client.launch_bus()``
    (or ``AsyncClient.launch_bus()``, ``corral bus``, ``corral attach``) is
    called: the client loads its plugins then, not before (those named in
    ``connect(plugins=...)``, else the installed ones that ``CORRAL_PLUGINS``
    allows). ``address`` is where the daemon's bus publishes (the reply of its
    ``bus_address`` command, ``ipc://$CORRAL_HOME/pub.sock``); ``topics`` is
    what the caller asked for (``"process:*"`` style patterns, None for every
    topic). Return a subscriber (the ``bus`` plugin returns a
    :class:`corral.plugins.bus.Bus`: iterable, ``async for``, ``on(topic, fn)``,
    ``close()``, a context manager), or None to let another plugin answer. A
    ``firstresult`` hook: the first answer wins, so a ``tryfirst``
    implementation replaces the bus plugin's. When none answers, ``launch_bus``
    raises :class:`corral.PluginError` naming the plugin ``bus``. An error
    raised here (no bus answering: :class:`corral.DaemonError`) reaches the caller.

    Example::

        import corral
        from corral.plugins.bus import Bus


        @corral.hookimpl(tryfirst=True)
        def corral_bus_subscriber(address, topics):
            # a roomier queue than the bus plugin's (10000 messages), for a slow reader
            return Bus(address, topics, hwm=100_000)

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def corral_startup_script(init_system: str, context: StartupContext) -> StartupScript | None:
    r"""Render the boot script that starts corral's daemon with ``init_system``.

    Called by the ``startup`` plugin, in the client process (``corral startup``,
    ``Client.startup()``), where the user runs the command, never in the daemon.
    ``init_system`` is one of ``systemd``, ``launchd``, ``openrc``, ``upstart``,
    ``systemv``, ``rcd`` (PM2's platform names are mapped first, see
    ``corral.plugins.startup.PLATFORMS``); ``context``
    (:class:`corral.plugins.startup.StartupContext`) carries the user, its
    ``CORRAL_HOME``, the service name, the ``corral`` executable and the ``PATH``
    to use. Return a :class:`corral.plugins.startup.StartupScript` (destination,
    text, mode, the commands that enable and disable it) for an init system the
    plugin renders, else None. Must not write files or run commands: the
    ``startup`` plugin installs what it returns, or prints it. A ``firstresult``
    hook: the first answer wins and the others are not called, so a ``tryfirst``
    implementation replaces a first-party generator.

    Example::

        from pathlib import Path

        import corral
        from corral.plugins.startup import StartupScript


        @corral.hookimpl(tryfirst=True)
        def corral_startup_script(init_system, context):
            if init_system != "systemd" or context.user_mode:
                return None  # the startup_systemd generator answers
            name = context.service(f"corral-{context.user}")
            corral_bin = context.corral_bin
            unit = (
                "[Unit]\nDescription=corral, niced\n\n[Service]\nType=forking\n"
                f"User={context.user}\nNice=5\nEnvironment=CORRAL_HOME={context.home}\n"
                f"PIDFile={context.home}/corral.pid\nExecStart=-{corral_bin} resurrect\n"
                f"ExecStop={corral_bin} kill\n\n[Install]\nWantedBy=multi-user.target\n"
            )
            return StartupScript(
                init_system="systemd",
                path=Path("/etc/systemd/system") / f"{name}.service",
                content=unit,
                enable=[["systemctl", "enable", name]],
                disable=[["systemctl", "disable", "--now", name]],
            )

    .. versionadded:: 0.1
    """
