"""Children's stdout and stderr: read from their pipes, written as whole lines.

The daemon reads each pipe without blocking when the loop says it is
readable, hands the bytes to the process's :class:`~corral.supervisor.lines.LineWriter`,
and passes the lines written to the ``corral_log_chunk`` hook when a plugin
implements it.

A partial line (progress output such as ``10%\r20%\r``, a prompt) is written
:data:`PARTIAL_DELAY` after its first byte arrived even if no newline follows,
so it is in the file before the daemon could die; the rest of that line
continues it (see :meth:`~corral.supervisor.lines.LineWriter.flush`). PM2 writes each
pipe read as it comes; corral waits that long for the newline so the lines of
the out and err streams stay apart.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from corral.datefmt import line_date_format
from corral.supervisor.lines import LineWriter

if TYPE_CHECKING:
    from corral.api import DaemonAPI
    from corral.hooks import PluginManager
    from corral.supervisor.fdholder import HolderLink
    from corral.supervisor.process import Child, ManagedProcess

READ_SIZE = 65536
READS_PER_WAKEUP = 16  # bounded, so one chatty app cannot starve the loop
PARTIAL_DELAY = 0.1  # seconds a partial line is held, at most, before it is written


class OutputPipes:
    """Every child pipe the daemon reads, keyed by the process that owns it."""

    def __init__(self, manager: PluginManager, api: DaemonAPI) -> None:
        self.manager = manager
        self.api = api  # what corral_log_chunk gets as ``daemon``
        self.hooked = bool(manager.pm.hook.corral_log_chunk.get_hookimpls())
        self._timers: dict[LineWriter, asyncio.TimerHandle] = {}  # partial lines to write
        self.holder: HolderLink | None = (
            None  # keeps a copy of each pipe (corral.supervisor.fdholder)
        )

    def watch(self, child: Child, proc: ManagedProcess, fd: int, stream: str) -> None:
        """Read ``fd`` (the child's ``out`` or ``err``) into the process's log files."""
        os.set_blocking(fd, False)
        paths = (proc.log_paths.get(stream), proc.log_paths.get("combined"))
        targets = [f for f in proc.log_files if f.path in paths]
        options = proc.options
        date_format = line_date_format(options)
        json_fields = None
        if options.get("log_type") == "json":
            json_fields = {"type": stream, "process_id": proc.pm_id, "app_name": proc.name}
        writer = LineWriter(targets, date_format=date_format, json_fields=json_fields)
        child.writers[fd] = (stream, writer)
        if self.holder is not None:
            meta = {"paths": [str(f.path) for f in targets], "date_format": date_format}
            self.holder.put(child.pid, stream, fd, {**meta, "json_fields": json_fields})
        asyncio.get_running_loop().add_reader(fd, self._readable, child, proc, fd, stream, writer)

    def hand_over(self) -> None:
        """Send the pipe holder the pipes :meth:`watch` holds back until the end of the
        loop's turn: a daemon killed in between would take them with it."""
        if self.holder is not None:
            self.holder.flush()

    def drain(self, child: Child, proc: ManagedProcess) -> None:
        """Read what the child left in its pipes, before its exit is handled."""
        for fd, (stream, writer) in list(child.writers.items()):
            self._readable(child, proc, fd, stream, writer)

    def _readable(
        self, child: Child, proc: ManagedProcess, fd: int, stream: str, writer: LineWriter
    ) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data = os.read(fd, READ_SIZE)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self._close(child, proc, fd, stream, writer)
                return
            written = writer.feed(data)
            if written and self.hooked:
                self.manager.call(
                    "corral_log_chunk", daemon=self.api, app=proc, stream=stream, data=written
                )
            if len(data) < READ_SIZE:
                break
        if writer.holds_partial and writer not in self._timers:
            self._timers[writer] = asyncio.get_running_loop().call_later(
                PARTIAL_DELAY, self._flush, proc, stream, writer
            )

    def _flush(self, proc: ManagedProcess, stream: str, writer: LineWriter) -> None:
        self._timers.pop(writer, None)
        written = writer.flush()
        if written and self.hooked:
            self.manager.call(
                "corral_log_chunk", daemon=self.api, app=proc, stream=stream, data=written
            )

    def _close(
        self, child: Child, proc: ManagedProcess, fd: int, stream: str, writer: LineWriter
    ) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        if self.holder is not None:
            self.holder.drop(child.pid, stream, fd)
        child.writers.pop(fd, None)
        timer = self._timers.pop(writer, None)
        if timer is not None:
            timer.cancel()
        rest = writer.close()
        if rest and self.hooked:
            self.manager.call(
                "corral_log_chunk", daemon=self.api, app=proc, stream=stream, data=rest
            )
