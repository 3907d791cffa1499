"""The daemon's side of the bus: one XPUB socket per daemon, and its counters.

Sending never blocks the daemon: past the high-water mark a subscriber's
messages drop (``CORRAL_BUS_HWM``, messages queued per subscriber, default
10000), and a topic nobody subscribes to is not even encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import zmq

import corral

from .protocol import WELCOME, encode

DEFAULT_HWM = 10000
CLOSE_LINGER_MS = 250  # time the last messages (corral:kill) get to leave at shutdown


def configured_hwm() -> int:
    """``CORRAL_BUS_HWM`` from the daemon's environment; OptionError when not an int >= 1."""
    value = os.environ.get("CORRAL_BUS_HWM", "")
    if not value:
        return DEFAULT_HWM
    if not value.isdigit() or int(value) < 1:
        raise corral.OptionError(
            f"CORRAL_BUS_HWM must be an integer >= 1, got {value!r}", field="CORRAL_BUS_HWM"
        )
    return int(value)


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
        try:
            self.sock.send_multipart(encode(topic, payload, seq), zmq.NOBLOCK)
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
