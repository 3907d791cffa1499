"""The apps' output on the runtime's own stdout and stderr, as a container logs it.

:class:`Output` is a plugin object the runtime registers in its daemon: each chunk
of an app's output (whole lines; a partial line once it waited 0.1 s or its app
exited) is written at once, an app's stdout to stdout and its stderr to stderr,
each line prefixed with ``NAME | `` (``NAME-ID | `` when the app has several
instances), or as one JSON object per line with ``--json``. It runs on the
daemon's loop (``corral_runs_on_loop``) and writes with blocking writes: a slow
reader of the container's output slows the apps' pipes down, it never loses a
line.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import threading
import time
from typing import Any, BinaryIO

import corral

BACKLOG = 64 * 1024 * 1024  # bytes queued before the apps' output waits for the reader
CLOSE_WAIT = 5.0  # seconds the last lines may take to be written at the end


class Output:
    """Prints every line the apps write (``corral_log_chunk``).

    The hook only queues the formatted bytes; a thread of its own writes them, in
    the order they came. So a reader that stalls for a moment stalls no one; one
    that stalls for longer than :data:`BACKLOG` bytes takes to write makes the hook
    wait, then the daemon's reads, then the apps' writes: the lines wait, none is
    dropped. At the end, :meth:`close` writes what is left, for at most
    :data:`CLOSE_WAIT` seconds if nobody reads.
    """

    corral_runs_on_loop = True  # it only queues: the order of the lines is kept

    def __init__(self, *, as_json: bool = False, out: Any = None, err: Any = None) -> None:
        self.as_json = as_json
        self.out = out if out is not None else _stream(sys.stdout)
        self.err = err if err is not None else _stream(sys.stderr)
        self._pending: collections.deque[tuple[Any, bytes]] = collections.deque()
        self._open: set[tuple[int, str]] = set()  # (pm_id, stream) whose last line had no end
        self._bytes = 0
        self._closing = False
        self._ready = threading.Condition()
        self._writer = threading.Thread(target=self._write_forever, name="runtime-out", daemon=True)
        self._writer.start()

    @corral.hookimpl
    def corral_log_chunk(self, daemon: Any, app: Any, stream: str, data: bytes) -> None:
        target = self.err if stream == "err" else self.out
        if target is None:
            return  # that stream of the runtime is closed
        lines = self._lines(app.pm_id, stream, data)
        if self.as_json:
            text = b"".join(self._json(app, stream, line) for line in lines)
        else:
            prefix = f"{self._label(app)} | ".encode()
            text = b"".join(prefix + line + b"\n" for line in lines)
        with self._ready:
            while self._bytes > BACKLOG and not self._closing:
                self._ready.wait()
            self._pending.append((target, text))
            self._bytes += len(text)
            self._ready.notify_all()

    def _lines(self, pm_id: int, stream: str, data: bytes) -> list[bytes]:
        """The lines of a chunk. A partial line (no newline: it waited 0.1 s, or is
        over 1 MiB) was printed as a line: the newline that ends it is not another."""
        key = (pm_id, stream)
        if key in self._open and data.startswith(b"\n"):
            data = data[1:]
        if data.endswith(b"\n"):
            self._open.discard(key)
        else:
            self._open.add(key)
        return data.splitlines()

    def _write_forever(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    if self._closing:
                        return
                    self._ready.wait()
                target, text = self._pending.popleft()
            _write_all(target, text)
            with self._ready:
                self._bytes -= len(text)
                self._ready.notify_all()

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Write what is queued (at most ``wait`` seconds), then end the writer."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        self._writer.join(wait)

    @staticmethod
    def _label(app: Any) -> str:
        return f"{app.name}-{app.pm_id}" if app.instances_of_app != 1 else app.name

    @staticmethod
    def _json(app: Any, stream: str, line: bytes) -> bytes:
        record = {
            "time": round(time.time(), 3),
            "app": app.name,
            "pm_id": app.pm_id,
            "stream": stream,
            "message": line.decode("utf-8", "replace"),
        }
        return json.dumps(record, ensure_ascii=False).encode() + b"\n"


def _stream(stream: Any) -> Any:
    """The binary side of ``sys.stdout``/``sys.stderr``; None when it is closed."""
    return getattr(stream, "buffer", None) if stream is not None else None


def _write_all(target: BinaryIO, text: bytes) -> None:
    """Write all of ``text`` even where the stream is non-blocking (a pipe a parent
    shares), then flush: a line sits in no buffer when the runtime is killed."""
    fd = target.fileno()
    target.flush()
    view = memoryview(text)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            os.set_blocking(fd, True)
        except (BrokenPipeError, OSError):
            return  # nobody reads the container's output any more (or it is full)


__all__ = ["Output"]
