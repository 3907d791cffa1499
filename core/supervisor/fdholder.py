"""The pipe holder: the read ends of the children's output pipes outlive a daemon's death.

As s6-svscan (and s6-fdholder) do for s6, a small process keeps a duplicate
of the read end of every child's stdout and stderr pipe. The daemon starts
it once per home (``python -m corral.supervisor.fdholder HOME``), in its own session so
that a SIGKILL of the daemon leaves it running, and hands it each pipe over
a unix socket (SCM_RIGHTS) when it starts reading it, with what the next
daemon needs to write its lines (the log paths, the date format, the JSON
fields). When the daemon reads the end of a pipe it tells the holder to drop it.

If the daemon dies, each pipe keeps a reader: a child blocks once its pipe is
full instead of losing what it wrote or dying of EPIPE. The next daemon takes
every pipe the holder has (:meth:`HolderLink.take`) and writes what they hold
into the log files while it stops the old children (:class:`Drain`), so no
line that sat in a pipe is lost. PM2 loses them.

The holder exits when the last daemon disconnects and it holds nothing (a
clean shutdown), or when no daemon has been connected for ``IDLE_EXIT``
seconds (then it held the pipes of a daemon nobody replaced). One holder per
home: it keeps ``fdholder.lock`` locked while it runs.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import json
import os
import selectors
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio

    from corral.supervisor.logs import LineWriter, LogFiles

# The holder's own process (``python -m corral.supervisor.fdholder``) boots beside the
# daemon: this module loads only the standard library it needs, and what only the
# daemon's side uses (asyncio, subprocess, the log writers) loads where it is used.

SOCKET, LOCK, PID = "fdholder.sock", "fdholder.lock", "fdholder.pid"
IDLE_EXIT = 60.0  # seconds with no daemon connected, after which held pipes are let go
MAX_FDS = 200  # per message (the kernel takes at most 253)
BUFSIZE = 1 << 20
READ_SIZE = 65536


# -- messages: JSON, with the fds as ancillary data ---------------------------


def _send(sock: socket.socket, body: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(body).encode()
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], ancillary)


def _recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, ancillary, _, _ = sock.recvmsg(BUFSIZE, socket.CMSG_SPACE(MAX_FDS * 4))
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[: len(payload) - len(payload) % 4]))
    for fd in fds:
        os.set_inheritable(fd, False)
    return (json.loads(data) if data else None), fds


# -- the holder process -----------------------------------------------------


def serve(home: Path) -> None:
    """Hold pipes for the daemons of ``home`` until none needs them (see the module doc)."""
    os.umask(0o077)  # its socket, lock and pid file are private from their creation
    lock = open(home / LOCK, "a")  # held (and locked) for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another holder serves this home
    path = home / SOCKET
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    (home / PID).write_text(str(os.getpid()))
    held: dict[str, tuple[int, dict[str, Any]]] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    connected: set[socket.socket] = set()
    idle_since, served = time.monotonic(), False
    try:
        while connected or not ((served and not held) or time.monotonic() - idle_since > IDLE_EXIT):
            for key, _ in selector.select(timeout=1.0):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    connected.add(conn)
                    selector.register(conn, selectors.EVENT_READ)
                    served = True
                    continue
                conn = key.fileobj  # type: ignore[assignment]
                try:
                    body, fds = _recv(conn)
                except OSError:
                    body, fds = None, []
                if body is None:
                    selector.unregister(conn)
                    conn.close()
                    connected.discard(conn)
                    idle_since = time.monotonic()
                    continue
                _handle(conn, body, fds, held)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(FileNotFoundError):
            (home / PID).unlink()


def _handle(
    conn: socket.socket, body: dict[str, Any], fds: list[int], held: dict[str, tuple[int, dict]]
) -> None:
    op = body.get("op")
    if op == "put":
        for key, meta, fd in zip(body["keys"], body["metas"], fds, strict=False):
            old = held.pop(key, None)
            if old is not None:
                os.close(old[0])
            held[key] = (fd, meta)
    elif op == "drop":
        for key in body["keys"]:
            old = held.pop(key, None)
            if old is not None:
                os.close(old[0])
    elif op == "take":
        items = list(held.items())
        held.clear()
        while True:
            chunk, items = items[:MAX_FDS], items[MAX_FDS:]
            with contextlib.suppress(OSError):
                _send(
                    conn,
                    {"items": [[k, meta] for k, (_, meta) in chunk], "more": bool(items)},
                    [fd for _, (fd, _) in chunk],
                )
            for _, (fd, _) in chunk:
                os.close(fd)
            if not items:
                break


# -- the daemon's side ------------------------------------------------------


@dataclass
class Held:
    """A pipe the holder kept: its read end and what the lines are written with."""

    fd: int
    meta: dict[str, Any]


class HolderLink:
    """The daemon's connection to the holder of its home. Every call is quick; a failure
    logs once and turns the link off (the daemon goes on as it would without one)."""

    def __init__(
        self,
        sock: socket.socket | None,
        log: Any,
        *,
        starting: tuple[Path, float] | None = None,
    ) -> None:
        self.sock: socket.socket | None = sock
        self.log = log
        self._starting = starting  # (home, deadline): a holder this daemon started still boots
        self._pending: dict[str, tuple[dict[str, Any], int]] = {}  # puts not sent yet
        self._flush_soon: asyncio.Handle | None = None

    @classmethod
    def open(cls, home: Path, log: Any, timeout: float = 3.0) -> HolderLink:
        """Connect to the holder of ``home``, or start one without waiting for it: it boots
        beside the daemon (about 0.1 s of Python start-up kept out of the daemon's), and
        the first call that needs it connects."""
        sock = _connect(home)
        if sock is not None:
            sock.settimeout(2.0)
            return cls(sock, log)
        import subprocess  # deferred: the daemon's side only (see the imports)
        import threading  # deferred: as above

        # it forks and its first process exits at once: the holder is no child of the
        # daemon, in a session of its own, so a kill of the daemon's group misses it
        starter = subprocess.Popen(
            [sys.executable, "-m", "corral.supervisor.fdholder", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=str(home),
            start_new_session=True,
        )
        # reaped on a thread: the daemon shows no zombie child, whether or not it connects
        threading.Thread(target=starter.wait, name="corral-fdholder-start", daemon=True).start()
        return cls(None, log, starting=(home, time.monotonic() + timeout))

    def _connected(self) -> bool:
        """Whether the link is up, waiting (until the deadline) for a holder still booting."""
        if self.sock is not None or self._starting is None:
            return self.sock is not None
        home, deadline = self._starting
        sock = _connect(home)
        while sock is None and time.monotonic() < deadline:
            time.sleep(0.005)
            sock = _connect(home)
        self._starting = None
        if sock is None:
            self.log.error("no pipe holder: lines in the pipes are lost if the daemon dies")
            return False
        sock.settimeout(2.0)
        self.sock = sock
        return True

    def put(self, pid: int, stream: str, fd: int, meta: dict[str, Any]) -> None:
        """Hand ``fd`` over at the end of this turn of the loop, with every other pipe
        of the turn (a start of 1,000 apps sends 10 messages, not 2,000)."""
        self._pending[_key(pid, stream, fd)] = (meta, fd)
        if self._flush_soon is not None:
            return
        import asyncio  # deferred: the holder's own process never loads asyncio

        try:
            self._flush_soon = asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no loop (a test, a tool): at once
            self.flush()

    def drop(self, pid: int, stream: str, fd: int) -> None:
        key = _key(pid, stream, fd)
        if self._pending.pop(key, None) is None:  # else it never left: nothing to drop
            self._call({"op": "drop", "keys": [key]})

    def flush(self) -> None:
        """Send the pipes :meth:`put` holds back, ``MAX_FDS`` a message."""
        if self._flush_soon is not None:
            self._flush_soon.cancel()
            self._flush_soon = None
        items, self._pending = list(self._pending.items()), {}
        for start in range(0, len(items), MAX_FDS):
            chunk = items[start : start + MAX_FDS]
            body = {"op": "put", "keys": [k for k, _ in chunk], "metas": [m for _, (m, _) in chunk]}
            if not self._call(body, [fd for _, (_, fd) in chunk]):
                return

    def take(self) -> list[Held]:
        """Every pipe the holder has (a dead daemon's), now this daemon's to read and close."""
        if self._starting is not None:
            return []  # a holder this daemon just started holds nothing yet
        self.flush()
        if not self._call({"op": "take"}):
            return []
        taken: list[Held] = []
        try:
            while True:
                body, fds = _recv(self.sock)  # type: ignore[arg-type]
                if body is None:
                    break
                taken += [Held(fd, meta) for (_, meta), fd in zip(body["items"], fds, strict=False)]
                if not body["more"]:
                    break
        except OSError as exc:
            self._failed(exc)
        return taken

    def close(self) -> None:
        self.flush()
        if self._starting is not None:
            self._connected()  # then closed: a holder nobody used exits now, not after IDLE_EXIT
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _call(self, body: dict[str, Any], fds: Sequence[int] = ()) -> bool:
        if not self._connected():
            return False
        assert self.sock is not None
        try:
            _send(self.sock, body, fds)
        except OSError as exc:
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: OSError) -> None:
        self.log.error("the pipe holder failed; going on without it", error=str(exc))
        self.close()


def _key(pid: int, stream: str, fd: int) -> str:
    return f"{pid}:{stream}:{fd}"


def _connect(home: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(str(home / SOCKET))
    except OSError:
        sock.close()
        return None
    return sock


class Drain:
    """Write what the taken pipes hold into their log files, on the loop, until each ends."""

    def __init__(self, taken: list[Held], logs: LogFiles) -> None:
        import asyncio  # deferred: the daemon's side only (see the imports)

        from corral.supervisor.logs import LineWriter  # deferred: as above

        self.logs = logs
        self.loop = asyncio.get_running_loop()
        self.open: dict[int, tuple[LineWriter, list]] = {}
        self.bytes = 0
        self.ended = asyncio.Event()
        for held in taken:
            files = []
            for path in held.meta.get("paths", []):
                with contextlib.suppress(OSError):
                    files.append(logs.acquire(Path(path)))
            writer = LineWriter(
                files,
                date_format=held.meta.get("date_format"),
                json_fields=held.meta.get("json_fields"),
            )
            os.set_blocking(held.fd, False)
            self.open[held.fd] = (writer, files)
            self.loop.add_reader(held.fd, self._read, held.fd)
        if not self.open:
            self.ended.set()

    def _read(self, fd: int) -> None:
        writer, _ = self.open[fd]
        for _ in range(16):  # bounded, as OutputPipes reads: an old child may still write
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close(fd)
                return
            self.bytes += len(data)
            writer.feed(data)

    def _close(self, fd: int) -> None:
        writer, files = self.open.pop(fd)
        self.loop.remove_reader(fd)
        os.close(fd)
        writer.close()
        for log in files:
            self.logs.release(log)
        if not self.open:
            self.ended.set()

    async def finish(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for every pipe to end (its writers gone), then read what
        is left and close them all. Returns the bytes drained."""
        import asyncio  # deferred: the daemon's side only (see the imports)

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout)
        for fd in list(self.open):
            with contextlib.suppress(KeyError):
                self._read(fd)
            if fd in self.open:
                self._close(fd)  # a grandchild still holds it: what it writes later is lost
        return self.bytes


if __name__ == "__main__":
    if os.fork() == 0:
        serve(Path(sys.argv[1]))
    os._exit(0)
