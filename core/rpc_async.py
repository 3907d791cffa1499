"""The asyncio side of the RPC wire: the daemon's server and the async client.

Requests are served concurrently, each in its own task, so a slow command on
one app never holds up another.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

import zmq
import zmq.asyncio

from .errors import DaemonError, error_to_wire
from .rpc import decode_request, encode, reply_result, request_command

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class RPCServer:
    """Serves ``handler(cmd, args)`` on a ROUTER socket until closed.

    ``options`` are set on the socket before it binds (the CURVE server keys of
    :mod:`corral.remote`).
    """

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        address: str,
        handler: Handler,
        options: dict[int, Any] | None = None,
    ) -> None:
        self.socket = ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 200)
        # a ROUTER drops replies to a peer whose queue is full: a client that pipelines
        # thousands of requests and reads late (1,000 by default) would lose some
        self.socket.setsockopt(zmq.SNDHWM, 10_000)
        for option, value in (options or {}).items():
            self.socket.setsockopt(option, value)
        try:
            self.socket.bind(address)
        except zmq.ZMQError:
            self.socket.close(linger=0)
            raise
        self.handler = handler
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    async def serve(self) -> None:
        while not self._closed:
            try:
                frames = await self.socket.recv_multipart()
            except (zmq.ZMQError, asyncio.CancelledError):
                return
            if len(frames) < 2:
                continue
            task = asyncio.ensure_future(self._answer(frames[0], frames[1:]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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
            try:
                await self.socket.send_multipart([identity, data])
            except zmq.ZMQError:
                pass

    async def drain(self, timeout: float = 5.0) -> None:
        """Let in-flight replies go out (used before the daemon exits)."""
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close(self) -> None:
        self._closed = True
        self.socket.close(linger=200)


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
        await sock.send(encode({"id": request_id, "cmd": cmd, "args": args or {}}))
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
