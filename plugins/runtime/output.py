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

import json
import os
import sys
import time
from typing import Any, BinaryIO

import corral


class Output:
    """Prints every line the apps write (``corral_log_chunk``)."""

    corral_runs_on_loop = True  # a write and nothing else: the order of the lines is kept

    def __init__(self, *, as_json: bool = False, out: BinaryIO | None = None, err: Any = None):
        self.as_json = as_json
        self.out = out if out is not None else sys.stdout.buffer
        self.err = err if err is not None else sys.stderr.buffer

    @corral.hookimpl
    def corral_log_chunk(self, daemon: Any, app: Any, stream: str, data: bytes) -> None:
        target = self.err if stream == "err" else self.out
        lines = data.splitlines()
        if self.as_json:
            text = b"".join(self._json(app, stream, line) for line in lines)
        else:
            prefix = f"{self._label(app)} | ".encode()
            text = b"".join(prefix + line + b"\n" for line in lines)
        _write_all(target, text)

    @staticmethod
    def _label(app: Any) -> str:
        return f"{app.name}-{app.pm_id}" if app.options.get("instances", 1) != 1 else app.name

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
        except BrokenPipeError:
            return  # nobody reads the container's output any more


__all__ = ["Output"]
