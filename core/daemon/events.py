"""The one event object every state change produces."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProcessEvent:
    """Something happened to a process, in PM2's ``process:event`` shape.

    ``event`` is PM2's word: ``start``, ``online``, ``exit``, ``restart``,
    ``stop``, ``delete``, ``restart overlimit``, ``errored``. ``process`` is
    the process's ``pm2_env`` without ``env``; ``manually`` is true when a
    client asked for it; ``reason`` says why in words.
    """

    event: str
    process: dict[str, Any]
    manually: bool = False
    reason: str = ""
    at: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def pm_id(self) -> int:
        return int(self.process["pm_id"])

    @property
    def name(self) -> str:
        return str(self.process["name"])

    def to_dict(self) -> dict[str, Any]:
        """PM2's bus packet: ``{event, manually, process, at}`` plus ``reason``."""
        return {
            "event": self.event,
            "manually": self.manually,
            "process": self.process,
            "at": self.at,
            "reason": self.reason,
        }
