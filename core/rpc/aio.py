"""The asyncio side of the RPC wire: the daemon's server and the async client.

Requests are served concurrently, each in its own task, so a slow command on
one app never holds up another.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

import zmq
import zmq.asyncio

from corral.errors import DaemonError, error_to_wire
from corral.rpc.wire import (
    MAX_FRAME,
    decode_request,
    encode,
    reply_result,
    request_command,
    request_frame,
)

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]

PEER_QUEUE = 100  # replies zmq queues for one client (its SNDHWM)
PEER_BACKLOG = 32 * 1024 * 1024  # bytes of replies held for one client beyond those
PEER_PENDING = 10_000  # requests of one client served at once (each a task until it ends)
FLUSH_MIN, FLUSH_MAX = 0.001, 0.2  # seconds between two tries to hand the backlog to zmq
REFUSAL_INTERVAL = 60.0  # seconds between two log lines about clients that do not read


class RPCServer:
    """Serves ``handler(cmd, args)`` on a ROUTER socket until closed.

    ``options`` are set on the socket before it binds (the CURVE server keys of
    the remote plugin). A frame over :data:`~corral.rpc.wire.MAX_FRAME` makes zmq
    drop its peer before it is buffered. What waits for one client is bounded:
    at most :data:`PEER_QUEUE` replies in zmq's queue for it, then up to
    :data:`PEER_BACKLOG` bytes held here; past that, its requests are dropped
    unanswered until it reads (a client that pipelines and never reads cannot
    grow the daemon). A client has at most :data:`PEER_PENDING` requests in
    progress (``stop`` of a slow app waits): further ones are dropped unanswered.
    """

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        address: str,
        handler: Handler,
        options: dict[int, Any] | None = None,
        log: Any = None,
    ) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 200)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME + 1024)
        # a full peer's queue raises Again (it is not dropped in silence): the reply
        # then waits in the backlog, counted in bytes
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.SNDHWM, PEER_QUEUE)
        for option, value in (options or {}).items():
            self.socket.setsockopt(option, value)
        try:
            self.socket.bind(address)
        except zmq.ZMQError:
            self.socket.close(linger=0)
            raise
        self.handler = handler
        self.log = log
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._backlog: dict[bytes, Backlog] = {}
        self._pending: dict[bytes, int] = {}
        self._flush_timer: asyncio.TimerHandle | None = None
        self._flush_delay = FLUSH_MIN
        self._last_warning = -REFUSAL_INTERVAL
        self._dropped = 0

    async def serve(self) -> None:
        while not self._closed:
            try:
                frames = await self.socket.recv_multipart()
            except (zmq.ZMQError, asyncio.CancelledError):
                return
            if len(frames) < 2:
                continue
            identity = frames[0]
            backlog = self._backlog.get(identity)
            pending = self._pending.get(identity, 0)
            if (backlog is not None and backlog.full) or pending >= PEER_PENDING:
                self._drop(identity, "request")  # it reads nothing: serve it nothing more
                continue
            self._pending[identity] = pending + 1
            task = asyncio.ensure_future(self._answer(identity, frames[1:]))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, identity))

    def _done(self, identity: bytes, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        left = self._pending.pop(identity, 1) - 1
        if left:
            self._pending[identity] = left

    async def _answer(self, identity: bytes, frames: list[bytes]) -> None:
        request_id = None
        try:
            request = decode_request(frames)
            request_id = request.get("id")  # so even a bad command's error finds its caller
            cmd, args = request_command(request)
            reply = {"id": request_id, "ok": True, "result": await self.handler(cmd, args)}
        except Exception as exc:
            reply = {"id": request_id, "ok": False, "error": error_to_wire(exc)}
        try:
            data = encode(reply)
        except (TypeError, ValueError) as exc:
            data = encode({"id": request_id, "ok": False, "error": error_to_wire(exc)})
        if not self._closed:
            self._send(identity, data)

    # -- what waits for a client that reads slowly, or never ---------------------

    def _send(self, identity: bytes, data: bytes) -> None:
        backlog = self._backlog.get(identity)
        if backlog is None:
            if self._try_send(identity, data):
                return
            backlog = self._backlog[identity] = Backlog()
        if backlog.full:
            self._drop(identity, "reply")
            return
        backlog.append(data)
        self._schedule_flush(FLUSH_MIN)

    def _try_send(self, identity: bytes, data: bytes) -> bool:
        """True when zmq took the reply, or when it can never go (the peer is gone)."""
        # no send ever waits here, so pyzmq tries this one at once and the future is
        # done; its own send (not a shadow socket's) keeps the socket's events in step
        sent = self.socket.send_multipart([identity, data], flags=zmq.DONTWAIT)
        if not sent.done():
            sent.add_done_callback(lambda f: f.exception())
            return True
        error = sent.exception()
        # Again: its queue is full, it is not reading. Any other error: it is gone
        # (EHOSTUNREACH), or the socket is closing: nobody to answer
        return not isinstance(error, zmq.Again)

    def _schedule_flush(self, delay: float) -> None:
        if self._flush_timer is None and not self._closed:
            loop = asyncio.get_running_loop()
            self._flush_timer = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        """Hand zmq what waits, peer by peer, as far as each peer's queue has room."""
        self._flush_timer = None
        moved = False
        for identity, backlog in list(self._backlog.items()):
            while backlog.replies and self._try_send(identity, backlog.replies[0]):
                backlog.popleft()
                moved = True
            if not backlog.replies:
                del self._backlog[identity]
        if self._backlog:
            # a reader drains its queue in microseconds; one that never reads is asked
            # less and less often
            self._flush_delay = FLUSH_MIN if moved else min(self._flush_delay * 2, FLUSH_MAX)
            self._schedule_flush(self._flush_delay)

    def _drop(self, identity: bytes, what: str) -> None:
        self._dropped += 1
        now = time.monotonic()
        if self.log is None or now - self._last_warning < REFUSAL_INTERVAL:
            return
        self._last_warning = now
        self.log.warning(
            "dropped requests of an RPC client: its replies unread or too many in progress",
            backlog_bytes=self._backlog[identity].size if identity in self._backlog else 0,
            pending=self._pending.get(identity, 0),
            dropped=self._dropped,
            last=what,
        )
        self._dropped = 0

    async def drain(self, timeout: float = 5.0) -> None:
        """Let in-flight replies go out (used before the daemon exits)."""
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close(self) -> None:
        self._closed = True
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        self.socket.close(linger=200)


class Backlog:
    """The replies waiting for one client whose zmq queue is full, and their size."""

    def __init__(self) -> None:
        self.replies: deque[bytes] = deque()
        self.size = 0

    @property
    def full(self) -> bool:
        return self.size >= PEER_BACKLOG

    def append(self, data: bytes) -> None:
        self.replies.append(data)
        self.size += len(data)

    def popleft(self) -> None:
        self.size -= len(self.replies.popleft())


class AsyncTransport:
    """The asyncio twin: one DEALER socket, replies matched to waiting calls by id."""

    def __init__(
        self,
        address: str,
        daemon_alive: Callable[[], bool],
        options: dict[int, Any] | None = None,
    ) -> None:
        self.address = address
        self.daemon_alive = daemon_alive
        self.options = options or {}  # set before connect, as in SyncTransport
        self.ctx = zmq.asyncio.Context.instance()
        self.socket: zmq.asyncio.Socket | None = None
        self._pending: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._ids = count(1)

    def _ensure(self) -> zmq.asyncio.Socket:
        if self.socket is None:
            self.socket = self.ctx.socket(zmq.DEALER)
            self.socket.setsockopt(zmq.LINGER, 0)
            for option, value in self.options.items():
                self.socket.setsockopt(option, value)
            self.socket.connect(self.address)
            self._reader = asyncio.ensure_future(self._read())
        return self.socket

    async def _read(self) -> None:
        assert self.socket is not None
        while True:
            try:
                reply = json.loads(await self.socket.recv())
            except (zmq.ZMQError, asyncio.CancelledError):
                return
            future = self._pending.pop(reply.get("id"), None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def call(
        self, cmd: str, args: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        sock = self._ensure()
        request_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await sock.send(request_frame(request_id, cmd, args))
        started = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=1.0)
                if done:
                    return reply_result(future.result())
                if timeout is not None and time.monotonic() - started >= timeout:
                    raise DaemonError(f"the daemon did not answer '{cmd}' within {timeout:g} s")
                if not self.daemon_alive():
                    raise DaemonError(f"the daemon died while serving '{cmd}'; see corral.log")
        finally:
            self._pending.pop(request_id, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.socket is not None:
            self.socket.close(linger=0)
            self.socket = None
