"""The three probes, as coroutines on the health thread's loop: each returns what it
saw (``"200 OK"``, ``"connected"``, ``"exit 0"``) or raises :class:`ProbeFailed`
with why. The caller bounds each by the check's timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from typing import Any

from corral.plugins.health.config import target

HEAD_LIMIT = 8192  # bytes of the response read for its status line
OUTPUT_SHOWN = 200  # characters of an exec check's output kept in the failure


class ProbeFailed(Exception):
    """The probe ran and the app failed it: a refused connection, a 500, an exit 1."""


async def http(url: str) -> str:
    """GET ``url`` over HTTP/1.1 (Connection: close); a status of 200-399 passes."""
    host, port, path = target("http", url)
    reader, writer = await _connect(host, port)
    try:
        name = f"[{host}]" if ":" in host else host
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\nUser-Agent: corral-health\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("latin-1"))
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            raise ProbeFailed("the response's first line is too long") from None
        except asyncio.IncompleteReadError:
            raise ProbeFailed("the connection closed before a status line") from None
    except OSError as exc:
        raise ProbeFailed(exc.strerror or str(exc)) from None
    finally:
        writer.close()
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeFailed(f"not an HTTP response: {line[:80]!r}")
    status = " ".join(parts[1:]).strip()
    if not 200 <= int(parts[1]) < 400:
        raise ProbeFailed(f"status {status}")
    return status


async def tcp(address: str) -> str:
    host, port, _ = target("tcp", address)
    _, writer = await _connect(host, port)
    writer.close()
    return "connected"


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.open_connection(host, port, limit=HEAD_LIMIT)
    except OSError as exc:
        raise ProbeFailed(f"cannot connect to {host}:{port}: {exc.strerror or exc}") from None


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
