"""The hooks of the daemon itself: start, stop, plugin errors, RPC commands, settings, endpoints.

The specs of one area of the contract; ``corral.hookspecs`` says what every hook
shares and lists the spec modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.hookspecs import hookspec

if TYPE_CHECKING:
    from corral.api import DaemonAPI


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
