"""The three probes, as coroutines on the health thread's loop: each returns what it
saw (``"200 OK"``, ``"connected"``, ``"exit 0"``) or raises :class:`ProbeFailed`
with why. The caller bounds each by the check's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from typing import Any

from corral.plugins.health.config import target

HEAD_LIMIT = 8192  # bytes of the response read for its status line
OUTPUT_SHOWN = 200  # characters of an exec check's output kept in the failure


class ProbeFailed(Exception):
    """The probe ran and the app failed it: a refused connection, a 500, an exit 1."""


def http_request(url: str) -> tuple[str, int, bytes]:
    """(host, port, the request's bytes) of an http check: made once per check."""
    host, port, path = target("http", url)
    name = f"[{host}]" if ":" in host else host
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\nUser-Agent: corral-health\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    )
    return host, port, request.encode("latin-1")


async def http(host: str, port: int, request: bytes) -> str:
    """Send ``request`` (:func:`http_request`) and read the status line; a status of
    200-399 passes. On a bare non-blocking socket: a stream's transport and protocol
    objects cost the thread more than the probe itself."""
    loop = asyncio.get_running_loop()
    sock = await _connect(loop, host, port)
    try:
        try:  # a few hundred bytes into an empty socket buffer: sent at once
            sent = sock.send(request)
        except BlockingIOError:
            sent = 0
        if sent < len(request):
            await loop.sock_sendall(sock, request[sent:])
        head = b""
        while b"\r\n" not in head:
            data = await loop.sock_recv(sock, HEAD_LIMIT)
            if not data:
                raise ProbeFailed("the connection closed before a status line")
            head += data
            if len(head) > HEAD_LIMIT and b"\r\n" not in head:
                raise ProbeFailed("the response's first line is too long")
    except OSError as exc:
        raise ProbeFailed(exc.strerror or str(exc)) from None
    finally:
        sock.close()
    line = head.split(b"\r\n", 1)[0]
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeFailed(f"not an HTTP response: {line[:80]!r}")
    status = " ".join(parts[1:]).strip()
    if not 200 <= int(parts[1]) < 400:
        raise ProbeFailed(f"status {status}")
    return status


async def tcp(host: str, port: int) -> str:
    (await _connect(asyncio.get_running_loop(), host, port)).close()
    return "connected"


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A connected non-blocking socket (a name, not an address, is resolved on the
    loop's executor)."""
    import ipaddress  # here, not at the daemon's start (1 ms); imported once

    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        address: Any = (host, port)
    except ValueError:
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ProbeFailed(f"cannot resolve {host}: {exc.strerror or exc}") from None
        family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except OSError as exc:
        sock.close()
        raise ProbeFailed(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock


async def run_command(argv: list[str], env: dict[str, str], cwd: str, account: Any) -> str:
    """Run ``argv`` as ``account`` (a ``corral.api.Account``, or None: the daemon's own)
    in ``cwd`` with ``env``; exit 0 passes. A cancelled check kills it."""
    extra: dict[str, Any] = {}
    if account is not None and os.getuid() == 0:
        extra = {"user": account.uid, "group": account.gid, "extra_groups": list(account.groups)}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            **extra,
        )
    except OSError as exc:
        raise ProbeFailed(f"cannot execute {argv[0]}: {exc.strerror or exc}") from None
    try:
        output, _ = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)  # its session: a check's own children go with it
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    if proc.returncode != 0:
        text = output.decode(errors="replace").strip()[-OUTPUT_SHOWN:]
        code = proc.returncode
        words = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        raise ProbeFailed(f"{words}: {text}" if text else words)
    return "exit 0"
