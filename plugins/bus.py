"""The bus: PM2's event bus, a zmq publisher every client may subscribe to.

The daemon publishes on ``ipc://$CORRAL_HOME/pub.sock`` (mode 0600). Each
message is two frames, the topic and a JSON object (UTF-8):

- ``process:event``: ``{event, manually, process, at, reason}``, ``event``
  being ``start``, ``online``, ``exit``, ``restart``, ``stop``, ``delete``,
  ``restart overlimit``, ``reload``...
- ``log:out`` / ``log:err``: ``{process: {pm_id, name, namespace}, at, data}``.
- ``process:msg`` and any ``type`` a child sends as ``{type, data, topic?}``:
  ``{at, data, process, topic?}``; any other message: ``{at, raw, process}``.
- ``process:exception``: ``{at, data: {name, message, stack}, process}``.
- ``corral:kill``: ``{status: "killed", msg}`` when the daemon stops.

Every payload also carries ``v`` (the schema version, 1) and ``seq``, a
counter per topic, so a subscriber counts the messages it lost. Sending never
blocks the daemon: past the high-water mark a subscriber's messages drop.
Subscribe with ``corral.connect().launch_bus()`` or ``corral bus``.

Options (the daemon's environment): ``CORRAL_BUS_HWM``, messages queued per
subscriber before newer ones are dropped for it (default 10000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import zmq

import corral

# Its observer hooks only queue work or touch loop state: they never block.
corral_runs_on_loop = True

SCHEMA_VERSION = 1
DEFAULT_HWM = 10000
WELCOME = b"corral:welcome"  # the first frame every new subscriber receives
CLOSE_LINGER_MS = 250  # time the last messages (corral:kill) get to leave at shutdown
# topics only the daemon speaks on: a child's message claiming one goes out as process:msg
DAEMON_TOPICS = frozenset({"process:event", "log:out", "log:err", "corral:kill", "corral:welcome"})


def _hwm() -> int:
    value = os.environ.get("CORRAL_BUS_HWM", "")
    if not value:
        return DEFAULT_HWM
    if not value.isdigit() or int(value) < 1:
        raise corral.OptionError(
            f"CORRAL_BUS_HWM must be an integer >= 1, got {value!r}", field="CORRAL_BUS_HWM"
        )
    return int(value)


def _now() -> int:
    return int(time.time() * 1000)


def _process(app: Any) -> dict[str, Any]:
    return {"pm_id": app.pm_id, "name": app.name, "namespace": app.namespace}


class Publisher:
    """The daemon's publishing socket and its counters. Used on the daemon's loop only."""

    def __init__(self, home: Path, hwm: int = DEFAULT_HWM) -> None:
        self.path = Path(home) / "pub.sock"
        self.address = f"ipc://{self.path}"
        self.published = 0
        self.dropped = 0  # sends zmq refused outright; a full subscriber drops silently
        self.seqs: dict[str, int] = {}
        self.subscribed: set[bytes] = set()  # topic prefixes someone listens to
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ctx = zmq.Context()
        # XPUB, not PUB: its welcome frame tells a subscriber its subscription is in place
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.XPUB_WELCOME_MSG, WELCOME)
        try:
            self.sock.bind(self.address)
        except zmq.ZMQError:
            self.sock.close()
            self.ctx.term()
            raise
        os.chmod(self.path, 0o600)

    def wants(self, topic: str) -> bool:
        """Whether a subscriber listens to ``topic``: nobody listening costs nothing."""
        self.drain()
        encoded = topic.encode()
        return any(encoded.startswith(prefix) for prefix in self.subscribed)

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Send ``payload`` under ``topic`` without ever blocking."""
        if not self.wants(topic):
            return
        seq = self.seqs.get(topic, 0) + 1
        self.seqs[topic] = seq
        payload["v"] = SCHEMA_VERSION
        payload["seq"] = seq
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        try:
            self.sock.send_multipart([topic.encode(), body], zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return
        self.published += 1

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve the socket's commands from ``loop``: zmq attaches a new subscriber (and
        sends it the welcome) only when the socket's owner touches the socket."""
        self.loop = loop
        loop.add_reader(self.sock.FD, self.drain)
        self.drain()

    def drain(self) -> None:
        """Process pending commands; track the subscription notices XPUB queues for us
        (``\x01prefix`` when the first subscriber of a prefix comes, ``\x00prefix``
        when the last one leaves)."""
        while self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            notice = self.sock.recv(zmq.NOBLOCK)
            if notice[:1] == b"\x01":
                self.subscribed.add(notice[1:])
            elif notice[:1] == b"\x00":
                self.subscribed.discard(notice[1:])

    def stats(self) -> dict[str, Any]:
        self.drain()
        return {"address": self.address, "published": self.published, "dropped_here": self.dropped}

    def close(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_reader(self.sock.FD)
        self.sock.close(linger=CLOSE_LINGER_MS)
        self.ctx.term()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


# pluggy registers this module: one publisher, for the one daemon a process runs
_publisher: Publisher | None = None


def _publish(topic: str, payload: dict[str, Any]) -> None:
    if _publisher is not None:
        _publisher.publish(topic, payload)


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    global _publisher
    if _publisher is not None and (_publisher.loop is None or _publisher.loop.is_closed()):
        _publisher.close()  # left by a daemon whose loop died without stopping
        _publisher = None
    if _publisher is not None:
        raise corral.PluginError(
            f"the bus already serves {_publisher.address}: one daemon per process has a bus"
        )
    _publisher = Publisher(daemon.home, _hwm())
    _publisher.watch(daemon.loop or asyncio.get_running_loop())


@corral.hookimpl
def corral_plugin_error(plugin: str, hook: str, error: BaseException) -> None:
    """A hook raised: tell subscribers which plugin, in which hook, and what."""
    _publish(
        "corral:plugin-error",
        {"plugin": plugin, "hook": hook, "error": f"{type(error).__name__}: {error}", "at": _now()},
    )


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    global _publisher
    if _publisher is None or _publisher.path.parent != Path(daemon.home):
        return
    publisher, _publisher = _publisher, None
    publisher.publish("corral:kill", {"status": "killed", "msg": "corral daemon stopped"})
    publisher.close()


@corral.hookimpl
def corral_process_event(event: Any) -> None:
    _publish("process:event", event.to_dict())


@corral.hookimpl
def corral_log_chunk(app: Any, stream: str, data: bytes) -> None:
    topic = "log:out" if stream == "out" else "log:err"
    if _publisher is None or not _publisher.wants(topic):
        return  # no subscriber: the chunk is not even decoded
    _publisher.publish(
        topic,
        {"process": _process(app), "at": _now(), "data": data.decode("utf-8", "replace")},
    )


@corral.hookimpl
def corral_process_message(app: Any, message: Any) -> None:
    if _publisher is None:
        return
    topic, payload = message_packet(message)
    if topic is None:
        return
    _publisher.publish(topic, {**payload, "process": _process(app), "at": _now()})


def message_packet(message: Any) -> tuple[str | None, dict[str, Any]]:
    """PM2's rules: ``{type, data}`` goes out under its type, anything else as raw process:msg.

    Returns ``(None, {})`` for messages PM2 swallows (those carrying ``node_version``).
    """
    if isinstance(message, dict):
        if "node_version" in message:
            return None, {}
        kind = message.get("type")
        if isinstance(kind, str) and kind and "data" in message and kind not in DAEMON_TOPICS:
            payload = {"data": message["data"]}
            if "topic" in message:
                payload["topic"] = message["topic"]
            return kind, payload
    return "process:msg", {"raw": message}


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"bus_address": bus_address}


def bus_address(daemon: Any) -> dict[str, Any]:
    """Where to subscribe, and how many messages went out or were refused."""
    if _publisher is None:
        raise corral.PluginError("the bus is not running in this daemon (see corral.log)")
    return _publisher.stats()


# -- the `corral bus` command -------------------------------------------------


def format_event(event: Any) -> list[str]:
    """``HH:MM:SS topic name[pm_id] text`` lines for one event (one per log line)."""
    payload = event.payload
    at = payload.get("at")
    clock = time.strftime("%H:%M:%S", time.localtime(at / 1000 if at else time.time()))
    process = payload.get("process") or {}
    who = f" {process.get('name')}[{process.get('pm_id')}]" if process else ""
    head = f"{clock} {event.topic}{who}"
    if event.topic == "process:event":
        reason = payload.get("reason")
        return [f"{head} {payload.get('event')}" + (f" ({reason})" if reason else "")]
    if event.topic in ("log:out", "log:err"):
        lines = str(payload.get("data", "")).rstrip("\n").split("\n")
        return [f"{head} {line}" for line in lines]
    if event.topic == "corral:kill":
        return [f"{head} {payload.get('msg', '')}"]
    if event.topic == "process:exception" and isinstance(payload.get("data"), dict):
        error = payload["data"]
        return [f"{head} {error.get('name', 'Error')}: {error.get('message', '')}"]
    body = payload["data"] if "data" in payload else payload.get("raw")
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    topic = f" ({payload['topic']})" if payload.get("topic") else ""
    return [f"{head}{topic} {text}"]


@corral.hookimpl
def corral_cli(group: Any) -> None:
    import click

    @click.command("bus")
    @click.option(
        "--topic",
        "-t",
        "topics",
        multiple=True,
        help="Only this topic; '*' wildcards (process:*). Repeat for several.",
    )
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    def bus_command(topics: tuple[str, ...], as_json: bool) -> None:
        """Stream the daemon's events, logs and messages until Ctrl-C."""
        wanted = list(topics)
        # corral:kill ends the stream, so it is always subscribed
        subscribed = [*wanted, "corral:kill"] if wanted else None
        client = corral.connect()
        try:
            with client.launch_bus(subscribed) as bus:
                for event in bus:
                    lines = [json.dumps(event.to_dict())] if as_json else format_event(event)
                    sys.stdout.write("".join(line + "\n" for line in lines))
                    sys.stdout.flush()
                    if event.topic == "corral:kill":
                        return
        finally:
            client.disconnect()

    group.add_command(bus_command)
