"""A plugin's condition on a child's readiness, beside the core's own signal.

A plugin asks for one in ``corral_before_spawn`` (:meth:`SpawnSpec.hold_ready
<corral.supervisor.spawn.SpawnSpec.hold_ready>`): the child it spawns is ready
only once its own signal has come (the spawn, the ready message with
``wait_ready``, sd_notify ``READY=1``, the node preload's "listening") *and*
every gate is open. The wait is bounded by the largest of ``listen_timeout`` and
the gates' own bounds; past it the child's readiness is ``listen_timeout``, as
when a signal never comes. The health plugin's readiness check is one.
"""

from __future__ import annotations

from collections.abc import Callable


class ReadyGate:
    """One plugin's condition: closed until :meth:`open` is called, on the daemon's loop."""

    __slots__ = ("_on_open", "bound", "name", "passed")

    def __init__(self, name: str, bound: float) -> None:
        if not name:
            raise ValueError("a ready gate needs a name: it is shown in the child's ready_by")
        if not bound > 0:
            raise ValueError(f"a ready gate's bound is seconds above 0, got {bound!r}")
        self.name = name
        self.bound = float(bound)  # the longest the child may wait for it, in seconds
        self.passed = False
        self._on_open: Callable[[], None] | None = None

    def open(self) -> None:
        """The condition holds: call on the daemon's loop (``loop.call_soon_threadsafe``
        from a thread). Opening twice, or after the child's wait ended, does nothing."""
        if self.passed:
            return
        self.passed = True
        if self._on_open is not None:
            self._on_open()

    def bind(self, on_open: Callable[[], None]) -> None:
        """The core's: what to call when this gate opens (the slot's readiness check)."""
        self._on_open = on_open

    def __repr__(self) -> str:
        return f"ReadyGate({self.name!r}, {self.bound:g} s, {'open' if self.passed else 'closed'})"


def all_open(gates: tuple[ReadyGate, ...]) -> bool:
    return all(gate.passed for gate in gates)


def ready_words(signal: str, gates: tuple[ReadyGate, ...]) -> str:
    """What made a gated child ready: ``"spawned and health"``."""
    return " and ".join([signal, *(gate.name for gate in gates)])
