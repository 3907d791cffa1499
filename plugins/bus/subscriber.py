"""A subscriber to the daemon's bus: what PM2's ``launchBus()`` returns.

``Client.launch_bus()`` gets one through the ``corral_bus_subscriber`` hook;
``Bus(address)`` opens one directly. :class:`Bus` subscribes to some topics
(see :mod:`corral.plugins.bus.protocol`; ``None`` means every topic) and hands
out :class:`BusEvent` objects three ways: iteration (blocking), ``async for``,
or ``on(pattern, fn)`` callbacks run on a background thread. Each payload's
``seq`` lets :attr:`Bus.dropped` count the messages a slow subscriber lost to
the daemon's high-water mark.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import zmq

import corral

from .protocol import WELCOME, decode, matches, prefix

log = logging.getLogger("corral.bus")

CALLBACK_POLL_MS = 50  # how soon the callback thread notices close()


@dataclass(frozen=True)
class BusEvent:
    """One message from the bus: its topic, its payload, and the payload's ``seq``."""

    topic: str
    payload: dict[str, Any]
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"topic": ..., **payload}``, as ``corral bus --json`` prints it."""
        return {"topic": self.topic, **self.payload}


def _patterns(topics: Iterable[str] | str | None) -> tuple[str, ...]:
    if topics is None:
        return ()
    if isinstance(topics, str):
        topics = [topics]
    patterns = tuple(str(t) for t in topics)
    return () if any(p in ("", "*") for p in patterns) else patterns


def _ms_left(deadline: float) -> int:
    """Milliseconds until ``deadline`` (a monotonic time), rounded up; 0 once past."""
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


class Bus:
    """A subscription to the daemon's bus at ``address`` (``ipc://.../pub.sock``).

    The constructor returns once the daemon has accepted the subscription, so
    every event published afterwards is delivered; it raises
    :class:`corral.DaemonError` when no bus answers within ``timeout`` seconds.
    ``hwm`` bounds the messages queued on this side before newer ones drop.
    """

    def __init__(
        self,
        address: str,
        topics: Iterable[str] | str | None = None,
        *,
        timeout: float | None = 5.0,
        hwm: int = 10000,
    ) -> None:
        self.address = address
        self.patterns = _patterns(topics)
        self.received = 0
        self._dropped = 0
        self._last_seq: dict[str, int] = {}
        self._pending: deque[BusEvent] = deque()
        self._callbacks: list[tuple[str, Callable[[BusEvent], Any]]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._closed = False
        self._term_in_thread = False  # close() was called by a callback
        self._async: tuple[Any, Any] | None = None  # (loop, zmq.asyncio shadow of the socket)
        self._ctx = zmq.Context()
        self._sock: zmq.Socket | None = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, hwm)
        self._sock.setsockopt(zmq.SUBSCRIBE, WELCOME)
        for start in {prefix(p) for p in self.patterns} or {""}:
            self._sock.setsockopt_string(zmq.SUBSCRIBE, start)
        self._sock.connect(address)
        if timeout:
            self._wait_welcome(timeout)

    # -- decoding ----------------------------------------------------------

    def _wait_welcome(self, timeout: float) -> None:
        assert self._sock is not None
        deadline = time.monotonic() + timeout
        while True:
            if not self._sock.poll(_ms_left(deadline)):
                self.close()
                raise corral.DaemonError(
                    f"no bus answered at {self.address} within {timeout} s: is the daemon "
                    "running with the 'bus' plugin loaded (CORRAL_PLUGINS)?"
                )
            frames = self._sock.recv_multipart()
            if frames == [WELCOME]:
                self._last_seq.clear()
                return
            event = self._decode(frames)
            if event is not None:
                self._pending.append(event)

    def _decode(self, frames: list[bytes]) -> BusEvent | None:
        """A matching event from ``frames``, or None (a welcome, a filtered topic, garbage)."""
        if frames == [WELCOME]:
            # a new connection (the daemon restarted): its counters start again
            self._last_seq.clear()
            return None
        try:
            message = decode(frames)
        except ValueError:
            log.warning("undecodable bus payload on %r", frames[0])
            return None
        if message is None:
            return None
        topic, payload = message
        if self.patterns and not any(matches(p, topic) for p in self.patterns):
            return None
        seq = payload.get("seq")
        if isinstance(seq, int):
            self._count_gap(topic, seq)
        self.received += 1
        return BusEvent(topic, payload, seq if isinstance(seq, int) else None)

    def _count_gap(self, topic: str, seq: int) -> None:
        last = self._last_seq.get(topic)
        if last is not None and seq > last + 1:
            self._dropped += seq - last - 1
        self._last_seq[topic] = seq

    @property
    def dropped(self) -> int:
        """Messages of the subscribed topics the daemon published but this bus never got."""
        return self._dropped

    # -- synchronous -------------------------------------------------------

    def _own_socket(self) -> zmq.Socket:
        if self._closed:
            raise corral.CorralError("this bus is closed")
        if self._sock is None:
            raise corral.CorralError(
                "this bus delivers to its on() callbacks: call launch_bus() again to iterate"
            )
        return self._sock

    def recv(self, timeout: float | None = None) -> BusEvent | None:
        """The next event, waiting up to ``timeout`` seconds (None: forever); None on timeout."""
        sock = self._own_socket()
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is not None:
                if not sock.poll(_ms_left(deadline)):
                    return None
            event = self._decode(sock.recv_multipart())
            if event is not None:
                return event

    def __iter__(self) -> Iterator[BusEvent]:
        return self

    def __next__(self) -> BusEvent:
        event = self.recv()
        assert event is not None
        return event

    # -- callbacks ---------------------------------------------------------

    def on(self, pattern: str, fn: Callable[[BusEvent], Any]) -> None:
        """Call ``fn(event)`` for every event whose topic fits ``pattern`` (``*`` wildcards).

        Callbacks run one at a time on a background thread started by the
        first ``on()``; from then on this bus only feeds callbacks. A callback
        that raises is logged and the others still run.
        """
        if self._closed:
            raise corral.CorralError("this bus is closed")
        with self._lock:
            self._callbacks.append((pattern, fn))
            if self._thread is None:
                sock = self._own_socket()
                self._sock = None  # the thread owns it now: zmq sockets are not thread-safe
                self._thread = threading.Thread(
                    target=self._dispatch, args=(sock,), name="corral-bus", daemon=True
                )
                self._thread.start()

    def _dispatch(self, sock: zmq.Socket) -> None:
        try:
            while self._pending:
                self._deliver(self._pending.popleft())
            while not self._closing.is_set():
                if not sock.poll(CALLBACK_POLL_MS):
                    continue
                event = self._decode(sock.recv_multipart())
                if event is not None:
                    self._deliver(event)
        finally:
            sock.close()
            if self._closed and self._term_in_thread:
                self._ctx.term()

    def _deliver(self, event: BusEvent) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for pattern, fn in callbacks:
            if matches(pattern, event.topic):
                try:
                    fn(event)
                except Exception:
                    log.exception("bus callback %r failed on %s", fn, event.topic)

    # -- asyncio -----------------------------------------------------------

    async def arecv(self, timeout: float | None = None) -> BusEvent | None:
        """:meth:`recv` for asyncio code: waits without blocking the loop."""
        sock = self._async_socket()
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is not None:
                if not await sock.poll(_ms_left(deadline)):
                    return None
            event = self._decode(await sock.recv_multipart())
            if event is not None:
                return event

    def _async_socket(self) -> Any:
        import asyncio

        import zmq.asyncio  # deferred: zmq.asyncio (~10 ms), only for async iteration

        sync = self._own_socket()
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (loop, zmq.asyncio.Socket.from_socket(sync))
        return self._async[1]

    async def __aiter__(self) -> AsyncIterator[BusEvent]:
        while True:
            event = await self.arecv()
            assert event is not None
            yield event

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        """Stop the callback thread, close the socket; safe to call twice, from a callback too."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        thread = self._thread
        if thread is threading.current_thread():
            self._term_in_thread = True  # the thread closes its socket, then the context
            return
        if thread is not None:
            thread.join()
        if self._async is not None:
            shadow, self._async = self._async[1], None
            with contextlib.suppress(Exception):
                shadow.close()  # unhooks it from its loop, and closes the socket it shadows
            if shadow.closed:
                self._sock = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._ctx.term()

    def __enter__(self) -> Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            if not self._closed:
                self.close()
