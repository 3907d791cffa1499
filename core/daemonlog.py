"""The daemon's own log: structlog JSON lines in ``$CORRAL_HOME/corral.log``.

Stdlib logging under the ``corral`` logger (the plugin manager, plugins) is
routed into the same file, so every line there is one JSON object.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import structlog


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

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = _open_private(path)
        self.logger = structlog.wrap_logger(
            structlog.WriteLogger(self),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=False),
                structlog.processors.JSONRenderer(),
            ],
        )

    def write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed by a reopen
            self.file.write(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError):
            self.file.flush()

    def reopen(self) -> None:
        """Open the path again (after a rotation or an external ``mv``), still 0600."""
        old, self.file = self.file, _open_private(self.path)
        old.close()

    def close(self) -> None:
        self.file.close()


def _open_private(path: Path) -> Any:
    """``path`` opened for appending lines, created 0600 if it does not exist."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    return open(fd, "a", buffering=1)
