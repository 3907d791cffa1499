"""Events and child messages a test daemon reported, recorded for tests to wait on.

:class:`EventRecorder` is a plugin keeping every process event and child
message; :func:`wait_for_event` and :func:`wait_for_message` wait on the one a
``corral_daemon`` client (or a recorder) got. Plugin authors import them from
:mod:`corral.testing`, whose ``corral_events`` fixture makes the recorder.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import corral

T = TypeVar("T")


@dataclass(frozen=True)
class ChildMessage:
    """A message a child sent on its channel, as ``corral_process_message`` got it."""

    pm_id: int
    name: str
    message: Any
    at: float = field(default_factory=time.time)


class EventRecorder:
    """A plugin that keeps every process event and child message, for tests to wait on.

    Hooks run on the daemon's loop thread; the lists are guarded by
    ``changed``, a condition notified on each new record. The daemon it was
    started in is kept as ``daemon`` (the object plugins get), for tests that
    call the daemon API the way a plugin would.
    """

    corral_runs_on_loop = True  # quick, and tests expect events in step with replies

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.events: list[corral.ProcessEvent] = []
        self.messages: list[ChildMessage] = []
        self.daemon: Any = None

    # -- hooks ------------------------------------------------------------

    @corral.hookimpl
    def corral_daemon_start(self, daemon: Any) -> None:
        self.daemon = daemon

    @corral.hookimpl
    def corral_process_event(self, event: corral.ProcessEvent) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    @corral.hookimpl
    def corral_process_message(self, app: Any, message: Any) -> None:
        with self.changed:
            self.messages.append(ChildMessage(app.pm_id, app.name, message))
            self.changed.notify_all()

    # -- reading ----------------------------------------------------------

    def mark(self) -> int:
        """The number of events so far: pass it as ``since`` to see only later ones."""
        with self.changed:
            return len(self.events)

    def matching(
        self,
        event: str | None = None,
        name: str | int | None = None,
        *,
        reason: str | None = None,
        since: int = 0,
    ) -> list[corral.ProcessEvent]:
        """Recorded events of this kind, for this app name (or pm_id), whose reason
        contains ``reason``, from index ``since`` on."""
        with self.changed:
            recorded = self.events[since:]
        return [
            e
            for e in recorded
            if (event is None or e.event == event)
            and _is_app(e.name, e.pm_id, name)
            and (reason is None or reason in e.reason)
        ]

    def wait(
        self,
        event: str,
        name: str | int | None = None,
        *,
        timeout: float = 10.0,
        count: int = 1,
        since: int = 0,
        reason: str | None = None,
    ) -> corral.ProcessEvent:
        """The ``count``-th matching event (see :meth:`matching`), once it is recorded."""
        found = self._wait(
            lambda: self.matching(event, name, reason=reason, since=since), count, timeout
        )
        if found is None:
            raise AssertionError(
                f"no {_nth(count)}{event!r} event{_for(name)} within {timeout:g} s"
                f"{f' with a reason containing {reason!r}' if reason else ''}; "
                f"recorded: {self._summary(since)}"
            )
        return found

    def wait_message(
        self, name: str | int | None = None, *, timeout: float = 10.0, count: int = 1
    ) -> ChildMessage:
        """The ``count``-th message a child (this app, if given) sent, once it arrives."""

        def sent() -> list[ChildMessage]:
            with self.changed:
                return [m for m in self.messages if _is_app(m.name, m.pm_id, name)]

        found = self._wait(sent, count, timeout)
        if found is None:
            raise AssertionError(f"no {_nth(count)}message{_for(name)} within {timeout:g} s")
        return found

    def _wait(self, records: Callable[[], list[T]], count: int, timeout: float) -> T | None:
        with self.changed:
            self.changed.wait_for(lambda: len(records()) >= count, timeout)
            found = records()
        return found[count - 1] if len(found) >= count else None

    def _summary(self, since: int) -> str:
        with self.changed:
            recorded = self.events[since:]
        return ", ".join(f"{e.event} {e.name}" for e in recorded[-20:]) or "nothing"


def _is_app(app_name: str, pm_id: int, wanted: str | int | None) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, int):
        return pm_id == wanted
    return app_name == wanted


def _nth(count: int) -> str:
    return "" if count == 1 else f"#{count} "


def _for(name: str | int | None) -> str:
    return "" if name is None else f" for {name!r}"


def _recorder(source: Any) -> EventRecorder:
    recorder = source if isinstance(source, EventRecorder) else getattr(source, "events", None)
    if not isinstance(recorder, EventRecorder):
        raise TypeError(
            f"expected a client from the corral_daemon fixture or an EventRecorder, got {source!r}"
        )
    return recorder


def wait_for_event(
    source: Any,
    event: str,
    name: str | int | None = None,
    timeout: float = 10.0,
    *,
    count: int = 1,
    since: int = 0,
    reason: str | None = None,
) -> corral.ProcessEvent:
    """Wait for a process event recorded by ``source`` (a ``corral_daemon`` client or an
    :class:`EventRecorder`) and return it. See :meth:`EventRecorder.wait`."""
    return _recorder(source).wait(
        event, name, timeout=timeout, count=count, since=since, reason=reason
    )


def wait_for_message(
    source: Any, name: str | int | None = None, timeout: float = 10.0, *, count: int = 1
) -> ChildMessage:
    """Wait for a message a child sent, recorded by ``source``, and return it."""
    return _recorder(source).wait_message(name, timeout=timeout, count=count)
