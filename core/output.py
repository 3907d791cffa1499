"""Children's stdout and stderr: read from their pipes, written as whole lines.

The daemon reads each pipe without blocking when the loop says it is
readable, hands the bytes to the process's :class:`~corral.logs.LineWriter`,
and passes the lines written to the ``corral_log_chunk`` hook when a plugin
implements it.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from .logs import LineWriter

if TYPE_CHECKING:
    from .fdholder import HolderLink
    from .hooks import PluginManager
    from .process import Child, ManagedProcess

READ_SIZE = 65536
READS_PER_WAKEUP = 16  # bounded, so one chatty app cannot starve the loop


class OutputPipes:
    """Every child pipe the daemon reads, keyed by the process that owns it."""

    def __init__(self, manager: PluginManager) -> None:
        self.manager = manager
        self.hooked = bool(manager.pm.hook.corral_log_chunk.get_hookimpls())
        self.holder: HolderLink | None = None  # keeps a copy of each pipe (corral.fdholder)

    def watch(self, child: Child, proc: ManagedProcess, fd: int, stream: str) -> None:
        """Read ``fd`` (the child's ``out`` or ``err``) into the process's log files."""
        os.set_blocking(fd, False)
        paths = (proc.log_paths.get(stream), proc.log_paths.get("combined"))
        targets = [f for f in proc.log_files if f.path in paths]
        options = proc.options
        date_format = options.get("log_date_format") or (
            "YYYY-MM-DDTHH:mm:ss" if options.get("time") else None
        )
        json_fields = None
        if options.get("log_type") == "json":
            json_fields = {"type": stream, "process_id": proc.pm_id, "app_name": proc.name}
        writer = LineWriter(targets, date_format=date_format, json_fields=json_fields)
        child.writers[fd] = (stream, writer)
        if self.holder is not None:
            meta = {"paths": [str(f.path) for f in targets], "date_format": date_format}
            self.holder.put(child.pid, stream, fd, {**meta, "json_fields": json_fields})
        asyncio.get_running_loop().add_reader(fd, self._readable, child, proc, fd, stream, writer)

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
                return
            except OSError:
                data = b""
            if not data:
                self._close(child, proc, fd, stream, writer)
                return
            written = writer.feed(data)
            if written and self.hooked:
                self.manager.call("corral_log_chunk", app=proc, stream=stream, data=written)
            if len(data) < READ_SIZE:
                return

    def _close(
        self, child: Child, proc: ManagedProcess, fd: int, stream: str, writer: LineWriter
    ) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        if self.holder is not None:
            self.holder.drop(child.pid, stream, fd)
        child.writers.pop(fd, None)
        rest = writer.close()
        if rest and self.hooked:
            self.manager.call("corral_log_chunk", app=proc, stream=stream, data=rest)
