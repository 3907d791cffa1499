"""The hooks run in a client process: transports, CLI commands, the bus subscriber, boot scripts.

The specs of one area of the contract; ``corral.hookspecs`` says what every hook
shares and lists the spec modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.hookspecs import hookspec

if TYPE_CHECKING:
    import click

# types a plugin defines for the hooks it calls: the core imports no plugin, so here
# they are only names (docs/gen_hooks.py lists where each lives)
PLUGIN_TYPES = {
    "StartupContext": "corral.plugins.startup.StartupContext",
    "StartupScript": "corral.plugins.startup.StartupScript",
    "Exporter": "corral.plugins.export.Exporter",
}
StartupContext = Any
StartupScript = Any
Exporter = Any


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


@hookspec
def corral_exporters() -> list[Exporter]:
    """The targets this plugin exports an app file to: ``corral export TARGET CONFIG``.

    Called by the ``export`` plugin, in the client process, to build its
    subcommands. Return a list of :class:`corral.plugins.export.Exporter`: each
    has a ``name`` (the TARGET word), a one-line ``help``, its own click
    ``params`` (``--image``), and ``render(request)``, which gets an
    :class:`corral.plugins.export.ExportRequest` (the file read for another
    machine by ``corral.api.read_portable``, the env name, the values of the
    params) and returns an :class:`corral.plugins.export.ExportResult`: the files
    to write, by relative name, and a warning per option it could not map, so
    nothing is dropped silently. ``render`` must not write files: the ``export``
    plugin writes them to ``-o DIR`` or prints them. Two exporters with one name
    is an error naming both plugins.

    Example::

        import json

        import corral
        from corral.plugins.export import Exporter, ExportResult


        def render(request):
            jobs, warnings = {}, []
            for app in request.config.apps:
                jobs[app.name] = {"Job": {"ID": app.name, "Count": app.instances}}
                if app.options.get("watch"):
                    warnings.append(f"{app.name}: watch has no Nomad equivalent")
            files = {f"{name}.nomad.json": json.dumps(job) for name, job in jobs.items()}
            return ExportResult(files=files, warnings=warnings)


        @corral.hookimpl
        def corral_exporters():
            return [Exporter(name="nomad", help="Nomad jobs, one per app.", render=render)]

    .. versionadded:: 0.2
    """
