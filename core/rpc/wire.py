"""The RPC wire: JSON requests over a zmq ROUTER socket, one reply each.

A request is one frame ``{"id": n, "cmd": "start", "args": {...}}``; the reply
is ``{"id": n, "ok": true, "result": ...}`` or ``{"id": n, "ok": false,
"error": {"type": ..., "message": ...}}``. Anything else gets an error reply
and changes nothing. This module holds the wire format and the blocking
client transport; the asyncio side (server and async client) is in
:mod:`corral.rpc.aio`, so the CLI never imports asyncio.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from itertools import count
from typing import Any

import zmq

from corral.errors import DaemonError, ProtocolError, error_from_wire

MAX_FRAME = 16 * 1024 * 1024


class RawJSON(bytes):
    """A command's result that is already JSON: the reply carries it as it is."""


def request_frame(request_id: int, cmd: str, args: dict[str, Any] | None) -> bytes:
    """The encoded request; ProtocolError past :data:`MAX_FRAME`, which the daemon's
    socket drops unread (the caller would wait for an answer that never comes)."""
    frame = encode({"id": request_id, "cmd": cmd, "args": args or {}})
    if len(frame) > MAX_FRAME:
        raise ProtocolError(
            f"'{cmd}' request of {len(frame)} bytes is over the {MAX_FRAME} byte limit: "
            "make it smaller (big data belongs in a file the app reads, not in its options)"
        )
    return frame


def encode(payload: dict[str, Any]) -> bytes:
    result = payload.get("result")
    if isinstance(result, RawJSON):
        rest = {k: v for k, v in payload.items() if k != "result"}
        head = json.dumps(rest, separators=(",", ":"), default=str)
        return b'%s,"result":%s}' % (head[:-1].encode(), result)
    return json.dumps(payload, separators=(",", ":"), default=str).encode()


def decode_request(frames: list[bytes]) -> dict[str, Any]:
    """The JSON object a client sent, or ProtocolError saying what is wrong with the frames."""
    if len(frames) != 1:
        raise ProtocolError(f"expected one frame per request, got {len(frames)}")
    if len(frames[0]) > MAX_FRAME:
        raise ProtocolError(f"request of {len(frames[0])} bytes is over the {MAX_FRAME} byte limit")
    try:
        request = json.loads(frames[0])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"request is not valid JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("request is nested too deep: at most a few hundred levels") from None
    if not isinstance(request, dict):
        raise ProtocolError('request must be a JSON object {"id", "cmd", "args"}')
    return request


def request_command(request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(cmd, args)`` of a decoded request, or ProtocolError."""
    cmd, args = request.get("cmd"), request.get("args", {})
    if not isinstance(cmd, str) or not cmd:
        raise ProtocolError("request has no 'cmd' string")
    if not isinstance(args, dict):
        raise ProtocolError(f"'args' of {cmd} must be a JSON object")
    return cmd, args


def _reply_id(data: bytes) -> Any:
    """The id of an encoded reply: read from its head when it has ours, else by decoding."""
    if data.startswith(b'{"id":'):
        end = data.find(b",", 6)
        if end > 6 and data[6:end].isdigit():
            return int(data[6:end])
    try:
        return json.loads(data).get("id")
    except (ValueError, AttributeError):
        return None


def reply_result(reply: dict[str, Any]) -> Any:
    if reply.get("ok"):
        return reply.get("result")
    raise error_from_wire(reply.get("error") or {})


class SyncTransport:
    """Blocking calls, one DEALER socket per thread, so threads never share a socket."""

    def __init__(
        self,
        address: str,
        daemon_alive: Callable[[], bool],
        options: dict[int, Any] | None = None,
    ) -> None:
        self.address = address
        self.daemon_alive = daemon_alive
        self.options = options or {}  # set on each socket before connect (CURVE keys)
        self.ctx = zmq.Context.instance()
        self._local = threading.local()
        self._sockets: list[zmq.Socket] = []
        self._lock = threading.Lock()
        self._ids = count(1)

    def _socket(self) -> zmq.Socket:
        sock = getattr(self._local, "socket", None)
        if sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            for option, value in self.options.items():
                sock.setsockopt(option, value)
            sock.connect(self.address)
            self._local.socket = sock
            with self._lock:
                self._sockets.append(sock)
        return sock

    def call(
        self, cmd: str, args: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        return reply_result(json.loads(self._exchange(cmd, args, timeout)[1]))

    def call_raw(self, cmd: str, args: dict[str, Any] | None = None) -> bytes:
        """The result of ``cmd`` as the daemon encoded it: JSON bytes, never decoded here.

        ``corral jlist`` prints it as is, which saves decoding and re-encoding
        a large list. An error reply raises as ``call`` does.
        """
        request_id, data = self._exchange(cmd, args, None)
        prefix = b'{"id":%d,"ok":true,"result":' % request_id
        if data.startswith(prefix) and data.endswith(b"}"):
            return data[len(prefix) : -1]
        return encode(reply_result(json.loads(data)))

    def _exchange(
        self, cmd: str, args: dict[str, Any] | None, timeout: float | None
    ) -> tuple[int, bytes]:
        """Send one request; ``(id, reply bytes)`` once its reply comes."""
        sock = self._socket()
        request_id = next(self._ids)
        sock.send(request_frame(request_id, cmd, args))
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            if sock.poll(int(wait * 1000)):
                data = sock.recv()
                if _reply_id(data) == request_id:
                    return request_id, data
                continue  # a late answer to an abandoned call
            if deadline is not None and time.monotonic() >= deadline:
                self._reset_socket()
                raise DaemonError(f"the daemon did not answer '{cmd}' within {timeout:g} s")
            if not self.daemon_alive():
                self._reset_socket()
                raise DaemonError(f"the daemon died while serving '{cmd}'; see corral.log")

    def _reset_socket(self) -> None:
        sock = getattr(self._local, "socket", None)
        if sock is not None:
            self._local.socket = None
            with self._lock:
                if sock in self._sockets:
                    self._sockets.remove(sock)
            sock.close(linger=0)

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close(linger=0)
            self._sockets.clear()
        self._local = threading.local()


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
