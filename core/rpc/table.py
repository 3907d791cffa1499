"""Every client call of corral, once: its method, the daemon command it sends, PM2's name.

The daemon's core commands (``Commands.CORE``), the PM2-named aliases of both
clients, corral's module-level calls (``corral.start(...)`` on the client of the
last ``connect()``) and ``docs/api.md`` are all built from :data:`CALLS`;
``tests/core/test_command_table.py`` checks each side against it, so a call is
added here or nowhere. It imports nothing: ``import corral`` reads it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any


class Call:
    """One client call."""

    __slots__ = ("async_too", "module_call", "name", "plugin", "pm2", "rpc", "summary")

    def __init__(
        self,
        name: str,
        summary: str,
        *,
        rpc: str | None = None,
        pm2: str | None = None,
        plugin: str | None = None,
        async_too: bool = True,
        module_call: bool = True,
    ) -> None:
        self.name = name  # the method of Client (and AsyncClient), snake_case
        self.summary = summary  # one line, for docs/api.md
        self.rpc = rpc  # the daemon command it sends; None: it sends none of its own
        self.pm2 = pm2  # PM2's name for it, an alias on both clients when it differs
        self.plugin = plugin  # the plugin that serves it; None: the core
        self.async_too = async_too  # AsyncClient has it too
        # corral.<name>(...) calls it on corral.current(); never the name of a module of
        # corral (corral.plugins is the plugins' package, so plugins() is no module call)
        self.module_call = module_call


CALLS: tuple[Call, ...] = (
    Call("ping", "the daemon's pid, version, install path and python", rpc="ping"),
    Call("start", "start a script, a command, a config file or stopped apps", rpc="start", pm2="start"),
    Call("stop", "stop processes; they stay in the list", rpc="stop", pm2="stop"),
    Call("restart", "stop, then start again, with new options if given", rpc="restart", pm2="restart"),
    Call("reload", "a rolling restart: each new instance is ready before its old one stops", rpc="reload", pm2="reload"),
    Call("graceful_reload", "reload, the old instances told to shut down first", rpc="reload", pm2="gracefulReload"),
    Call("start_or_restart", "bring a config file's apps in line, restarting those it keeps", rpc="start", pm2="startOrRestart", module_call=False),
    Call("start_or_reload", "the same, reloading the apps it keeps", rpc="start", pm2="startOrReload", module_call=False),
    Call("start_or_graceful_reload", "the same, gracefully reloading the apps it keeps", rpc="start", pm2="startOrGracefulReload", module_call=False),
    Call("scale", "run N instances of an app, or +N / -N more or fewer", rpc="scale", pm2="scale"),
    Call("delete", "stop processes and forget them", rpc="delete", pm2="delete"),
    Call("list", "every process (a ProcessInfo each)", rpc="list", pm2="list"),
    Call("describe", "the processes a target names, in full", rpc="describe", pm2="describe"),
    Call("dump", "save the process list for resurrect", rpc="dump", pm2="dump"),
    Call("resurrect", "start the apps of the last dump", rpc="resurrect", pm2="resurrect"),
    Call("flush", "empty the log files", rpc="flush", pm2="flush"),
    Call("reset", "zero the restart counters", rpc="reset", pm2="reset"),
    Call("send_signal_to_process_name", "a signal to every process of an app", rpc="send_signal_to_process_name", pm2="sendSignalToProcessName"),
    Call("send_signal_to_process_id", "a signal to one process", rpc="send_signal_to_process_id", pm2="sendSignalToProcessId"),
    Call("send_data_to_process_id", "a packet to one process's channel (process.on('message'))", rpc="send_data_to_process_id", pm2="sendDataToProcessId"),
    Call("send_line", "a line to one process's stdin", rpc="send_line", pm2="sendLineToStdin", module_call=False),
    Call("plugins", "the daemon's plugins, with their errors and dropped calls", rpc="plugins", module_call=False),
    Call("options", "every app option the daemon accepts, with its plugin", rpc="options", module_call=False),
    Call("kill_daemon", "stop every app and the daemon", rpc="kill_daemon", pm2="killDaemon"),
    Call("update", "re-execute the daemon as this corral, the apps kept running", rpc="update", pm2="updatePM2", async_too=False, module_call=False),
    Call("wait_started", "the verdict on a start: which instances stayed up"),
    Call("launch_bus", "a subscriber to the daemon's events and app output", rpc="bus_address", pm2="launchBus", plugin="bus"),
    Call("reload_logs", "reopen every log file after an external rotation", rpc="reload_logs", pm2="reloadLogs", plugin="logrotate"),
    Call("startup", "install the boot script that resurrects the apps", pm2="startup", plugin="startup", async_too=False, module_call=False),
    Call("unstartup", "remove that boot script", pm2="unstartup", plugin="startup", async_too=False, module_call=False),
    Call("jlist_json", "the list as `pm2 jlist` prints it: raw JSON bytes", rpc="list", async_too=False, module_call=False),
    Call("call", "any daemon command by name, a plugin's too", module_call=False),
    Call("disconnect", "close this client's connection", pm2="disconnect"),
)  # fmt: skip


def core_commands() -> frozenset[str]:
    """The daemon commands the core serves (a plugin serves the others)."""
    return frozenset(c.rpc for c in CALLS if c.rpc and c.plugin is None)


def module_calls() -> tuple[str, ...]:
    """The calls ``corral.<name>(...)`` makes on the client of the last ``connect()``."""
    return tuple(c.name for c in CALLS if c.module_call)


def with_pm2_names(cls: type) -> type:
    """Class decorator: each call of :data:`CALLS` that ``cls`` has gets PM2's name as
    an alias (``gracefulReload`` for ``graceful_reload``)."""
    for call in CALLS:
        method: Any = cls.__dict__.get(call.name) or getattr(cls, call.name, None)
        if method is not None and call.pm2 and call.pm2 != call.name:
            setattr(cls, call.pm2, method)
    return cls
