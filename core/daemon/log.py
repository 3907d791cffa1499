"""The daemon's own log: structlog JSON lines in ``$CORRAL_HOME/corral.log``.

Stdlib logging under the ``corral`` logger (the plugin manager, plugins) is
routed into the same file, so every line there is one JSON object.

corral.log is written like an app log (:class:`~corral.supervisor.logfile.LogFile`): on a
full disk records are dropped, never raised, and the first record written
again is followed by one saying how many were lost. It also tells when an app
log file starts failing and when it is written again (:meth:`DaemonLog.watch`):
one record each per failing streak, however many lines are dropped between.

No record shows a secret (:mod:`corral.options.secrets`): before a record is rendered,
an entry under a secret name is masked, and so is, in every string, a URL's
password, a ``NAME=value`` pair with a secret name, and any secret value of a
managed app's env (``known_secrets``), wherever an error message quotes it.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog

from corral.options.secrets import mask_data
from corral.supervisor.logfile import LogFile
from corral.supervisor.logs import LogFiles

_PROCESSORS: list[Any] = [
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=False),
    structlog.processors.JSONRenderer(),
]
_SPACE_ERRORS = frozenset((errno.ENOSPC, errno.EDQUOT))


class StructlogHandler(logging.Handler):
    """Routes stdlib logging (plugins, hooks) into the daemon's JSON log."""

    def __init__(self, logger: Any) -> None:
        super().__init__(logging.INFO)
        self.logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        getattr(self.logger, level if level in ("info", "warning", "error") else "info")(
            record.getMessage(), logger=record.name
        )


class DaemonLog:
    """``corral.log``: structlog JSON lines on a file that ``reload_logs`` can reopen."""

    known_secrets: Callable[[], Iterable[str]] | None  # values masked wherever they appear

    def __init__(self, path: Path) -> None:
        self.path = path
        self.known_secrets = None
        self.file = LogFile(path, mode=0o600, on_resume=self._resumed)
        self.logger = structlog.wrap_logger(
            structlog.WriteLogger(self), processors=[self._mask, *_PROCESSORS]
        )

    def _mask(self, logger: Any, method: str, record: dict[str, Any]) -> dict[str, Any]:
        """The structlog processor that takes every secret out of a record."""
        known: Iterable[str] = ()
        if self.known_secrets is not None:
            try:
                known = self.known_secrets()
            except Exception:  # a record is still written, masked by name and by URL
                known = ()
        return mask_data(record, known)

    def write(self, text: str) -> None:
        """One rendered record with its newline (structlog's WriteLogger calls this)."""
        self.file.write(text.encode("utf-8", "replace"))

    def flush(self) -> None:
        """Nothing to do: every record is written at once."""

    def reopen(self) -> None:
        """Open the path again (after a rotation or an external ``mv``), still 0600."""
        self.file.reopen()

    def close(self) -> None:
        self.file.close()

    def watch(self, files: LogFiles) -> None:
        """Log here when one of ``files`` starts failing, and when it is written again."""
        files.on_error = self._file_failed
        files.on_resume = self._file_resumed

    def _file_failed(self, log: LogFile, exc: OSError) -> None:
        until = "space frees" if exc.errno in _SPACE_ERRORS else "it can be written again"
        self.logger.error(
            f"log file {log.path}: {exc.strerror or exc}; dropping output until {until}",
            path=str(log.path),
            errno=errno.errorcode.get(exc.errno or 0),
        )

    def _file_resumed(self, log: LogFile, lines: int, nbytes: int, seconds: float) -> None:
        self.logger.warning(
            f"log file {log.path}: writing again; {lines} lines ({nbytes} bytes) were dropped",
            path=str(log.path),
            dropped_lines=lines,
            dropped_bytes=nbytes,
            seconds=round(seconds, 3),
        )

    def _resumed(self, log: LogFile, lines: int, nbytes: int, seconds: float) -> None:
        # Called inside a write, under structlog's lock for this file: render the record
        # here and write it straight to the file, not through the logger.
        record = {
            "event": f"corral.log: writing again; {lines} records ({nbytes} bytes) were dropped",
            "dropped_records": lines,
            "dropped_bytes": nbytes,
            "seconds": round(seconds, 3),
        }
        for processor in _PROCESSORS:
            record = processor(None, "warning", record)
        self.write(f"{record}\n")
