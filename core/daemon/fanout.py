"""The daemon's process events, told in order to the plugins' hook and in-process listeners.

Every :class:`corral.daemon.events.ProcessEvent` the daemon emits (``Daemon.emit``) goes to
``corral_process_event`` and to each listener; inside :meth:`EventFanout.holding`
they wait and are told in order once the outermost such section ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from corral.daemon.events import ProcessEvent

if TYPE_CHECKING:
    from corral.api import DaemonAPI
    from corral.hooks import PluginManager
    from corral.supervisor.process import ManagedProcess


class EventFanout:
    """Where a daemon's events go: the plugins' hook, then each in-process listener."""

    def __init__(self, manager: PluginManager, api: DaemonAPI) -> None:
        self.manager = manager
        self.api = api
        self._held_events: list[ProcessEvent] | None = None  # see holding
        self._has_event_hooks = bool(manager.pm.hook.corral_process_event.get_hookimpls())
        self.listeners: list[Any] = []  # callables(ProcessEvent), for in-process users

    def emit(
        self, proc: ManagedProcess, name: str, *, manually: bool = False, reason: str = ""
    ) -> None:
        if not (self._has_event_hooks or self.listeners):
            return
        event = ProcessEvent(name, proc.pm2_env(with_env=False), manually=manually, reason=reason)
        if self._held_events is not None:
            self._held_events.append(event)  # told in order once the held section ends
            return
        self._tell(event)

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Events emitted inside are told in order when the outermost such section
        ends: an exit's immediate restart forks first, and the plugins hear "exit"
        (then "online") after, each event with the state it had when it happened."""
        outermost = self._held_events is None
        if outermost:
            self._held_events = []
        try:
            yield
        finally:
            if outermost:
                held, self._held_events = self._held_events or [], None
                for event in held:
                    self._tell(event)

    def _tell(self, event: ProcessEvent) -> None:
        if self._has_event_hooks:
            self.manager.call("corral_process_event", daemon=self.api, event=event)
        for listener in list(self.listeners):
            with contextlib.suppress(Exception):
                listener(event)


__all__ = ["EventFanout"]
