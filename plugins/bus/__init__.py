"""The bus: PM2's event bus, a zmq publisher every client may subscribe to.

In the daemon, one :class:`~corral.plugins.bus.publisher.Publisher` per daemon
(kept with ``daemon.state``, so two daemons in one process each publish on
their own ``$CORRAL_HOME/pub.sock``) sends process events, log lines, child
messages and plugin errors; the wire format is :mod:`corral.plugins.bus.protocol`.
In the client, ``Client.launch_bus()`` asks the daemon where its bus is, then
this plugin's ``corral_bus_subscriber`` for a :class:`Bus`; ``corral bus`` streams
it on the command line.

Subscribe with ``corral.connect().launch_bus()``, or ``from corral.plugins.bus
import Bus`` and ``Bus(address, topics)``.

Options (the daemon's environment): ``CORRAL_BUS_HWM``, messages queued per
subscriber before newer ones are dropped for it (default 10000).
"""

from __future__ import annotations

import time
from typing import Any

import corral

from .protocol import (
    KILL,
    LOG_ERR,
    LOG_OUT,
    PLUGIN_ERROR,
    PROCESS_EVENT,
    matches,
    message_packet,
)
from .publisher import Publisher, configured_hwm
from .subscriber import Bus, BusEvent

__all__ = ["Bus", "BusEvent", "Publisher", "matches", "message_packet"]

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

STATE_KEY = "bus"


class _Slot:
    """This plugin's state in one daemon: its publisher, while the daemon runs."""

    publisher: Publisher | None = None


def publisher_of(daemon: Any) -> Publisher | None:
    """The publisher of ``daemon`` (a ``corral.api.DaemonAPI``), None when it has none."""
    return daemon.state(STATE_KEY, _Slot).publisher


def _now() -> int:
    return int(time.time() * 1000)


def _process(app: Any) -> dict[str, Any]:
    return {"pm_id": app.pm_id, "name": app.name, "namespace": app.namespace}


# -- in the daemon ------------------------------------------------------------


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    slot = daemon.state(STATE_KEY, _Slot)
    if slot.publisher is not None:
        return  # a plugin registered late gets this call replayed: already serving
    slot.publisher = Publisher(daemon.home, configured_hwm())
    slot.publisher.watch(daemon.loop)


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    slot = daemon.forget_state(STATE_KEY)
    if slot is None or slot.publisher is None:
        return
    slot.publisher.publish(KILL, {"status": "killed", "msg": "corral daemon stopped"})
    slot.publisher.close()


@corral.hookimpl
def corral_plugin_error(daemon: Any, plugin: str, hook: str, error: BaseException) -> None:
    """A hook raised: tell subscribers which plugin, in which hook, and what."""
    publisher = publisher_of(daemon)
    if publisher is not None:
        message = {"plugin": plugin, "hook": hook, "error": f"{type(error).__name__}: {error}"}
        publisher.publish(PLUGIN_ERROR, {**message, "at": _now()})


@corral.hookimpl
def corral_process_event(daemon: Any, event: Any) -> None:
    publisher = publisher_of(daemon)
    if publisher is not None and publisher.wants(PROCESS_EVENT):  # else not even encoded
        publisher.publish(PROCESS_EVENT, event.to_dict())


@corral.hookimpl
def corral_log_chunk(daemon: Any, app: Any, stream: str, data: bytes) -> None:
    topic = LOG_OUT if stream == "out" else LOG_ERR
    publisher = publisher_of(daemon)
    if publisher is None or not publisher.wants(topic):
        return  # no subscriber: the chunk is not even decoded
    publisher.publish(
        topic,
        {"process": _process(app), "at": _now(), "data": data.decode("utf-8", "replace")},
    )


@corral.hookimpl
def corral_process_message(daemon: Any, app: Any, message: Any) -> None:
    publisher = publisher_of(daemon)
    if publisher is None:
        return
    topic, payload = message_packet(message)
    if topic is not None:
        publisher.publish(topic, {**payload, "process": _process(app), "at": _now()})


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"bus_address": bus_address}


def bus_address(daemon: Any) -> dict[str, Any]:
    """Where to subscribe, and how many messages went out or were refused."""
    publisher = publisher_of(daemon)
    if publisher is None:
        raise corral.PluginError("the bus is not running in this daemon (see corral.log)")
    return publisher.stats()


# -- in the client ------------------------------------------------------------


@corral.hookimpl
def corral_bus_subscriber(address: str, topics: list[str] | None) -> Bus:
    return Bus(address, topics)


@corral.hookimpl
def corral_cli(group: Any) -> None:
    from .command import add_to  # click loads only in the CLI, never in the daemon

    add_to(group)
