"""corral: PM2 for Python.

``import corral`` is cheap: names load on first use, so the CLI's hot paths
(``corral jlist``) never import what they do not need.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~4 ms of a CLI call)
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "connect": "client",
    "current": "client",
    "Client": "client",
    "AsyncClient": "client",
    "CorralWarning": "client",
    "ProcessInfo": "client.info",
    "ProcessEvent": "daemon.events",
    "Option": "options.schema",
    "hookimpl": "hookspecs",
    "hookspec": "hookspecs",
    "ProcessState": "supervisor.lifecycle",
    "CorralError": "errors",
    "OptionError": "errors",
    "ConfigError": "errors",
    "NotFoundError": "errors",
    "ScriptError": "errors",
    "DaemonError": "errors",
    "ProtocolError": "errors",
    "PluginError": "errors",
    "StateError": "errors",
    "StartFailed": "client.verdict",
}

# names that left the core for a plugin: name -> where to import it from now
_MOVED = {"Bus": "corral.plugins.bus", "BusEvent": "corral.plugins.bus"}

# PM2's singleton: module-level calls act on the client of the last connect(), under
# corral's names and PM2's (corral.gracefulReload); corral.rpc.table lists them,
# read on the first such call only, so `import corral.child` loads corral and no more
_singleton_calls: dict[str, str] = {}


def _module_call(name: str) -> str | None:
    """The client method behind the module call ``name``, or None."""
    if not _singleton_calls:
        from corral.rpc.table import CALLS  # deferred: `import corral.child` loads corral alone

        for call in CALLS:
            if call.module_call:
                _singleton_calls.update({call.name: call.name, call.pm2 or call.name: call.name})
    return _singleton_calls.get(name)


__all__ = [
    "AsyncClient",
    "Client",
    "ConfigError",
    "CorralError",
    "CorralWarning",
    "DaemonError",
    "NotFoundError",
    "Option",
    "OptionError",
    "PluginError",
    "ProcessEvent",
    "ProcessInfo",
    "ProcessState",
    "ProtocolError",
    "ScriptError",
    "StartFailed",
    "StateError",
    "__version__",
    "connect",
    "current",
    "delete",
    "describe",
    "disconnect",
    "dump",
    "flush",
    "gracefulReload",
    "graceful_reload",
    "hookimpl",
    "hookspec",
    "killDaemon",
    "kill_daemon",
    "launchBus",
    "launch_bus",
    "list",
    "ping",
    "reload",
    "reloadLogs",
    "reload_logs",
    "reset",
    "restart",
    "resurrect",
    "scale",
    "sendDataToProcessId",
    "sendSignalToProcessId",
    "sendSignalToProcessName",
    "send_data_to_process_id",
    "send_signal_to_process_id",
    "send_signal_to_process_name",
    "start",
    "stop",
    "wait_started",
]

if TYPE_CHECKING:
    from corral.client import AsyncClient, Client, CorralWarning, connect, current
    from corral.client.info import ProcessInfo
    from corral.client.verdict import StartFailed
    from corral.daemon.events import ProcessEvent
    from corral.errors import (
        ConfigError,
        CorralError,
        DaemonError,
        NotFoundError,
        OptionError,
        PluginError,
        ProtocolError,
        ScriptError,
        StateError,
    )
    from corral.hookspecs import hookimpl, hookspec
    from corral.options.schema import Option
    from corral.supervisor.lifecycle import ProcessState


def _singleton(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        # deferred: corral stays lazy: the client loads on the first call
        from corral.client import current

        return getattr(current(), name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"``{name}`` on the client of the last ``corral.connect()``."
    return call


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif (method := _module_call(name)) is not None:
        value = _singleton(method)
    elif name in _MOVED:
        raise AttributeError(f"corral.{name} is a plugin's now: from {_MOVED[name]} import {name}")
    else:
        raise AttributeError(f"module 'corral' has no attribute {name!r}")
    globals()[name] = value
    return value
