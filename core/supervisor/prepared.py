"""A slot's next spawn made ready before its child dies: the argv, cwd and environment of
its spec kept from the last spawn, and the channel's socket pair taken from a small spare.

A crash restart then forks after a few dict copies (the spec) and no ``socketpair``:
what :meth:`corral.supervisor.slot.Slot.spawn` computed for the run before is reused
while everything it came from is the same. The spec is kept per slot only once the
slot has been restarted by its policy (an app that never crashes keeps nothing: no
memory per app); it is keyed on the objects it was made of (``options`` and ``env``
are replaced, never changed in place, by an update, ``restart --update-env`` or a
config reload) and on the slot's names and paths, so a stale spec is never used: a
change of any of them makes a fresh one. The fields that change at every spawn (the
status, the counters, ``pm2_env``'s runtime part) are laid over it at each spawn,
so the child's environment is exactly :meth:`ManagedProcess.child_env`'s.

The spare channels (at most :data:`SPARE_CHANNELS` per daemon, two descriptors each)
are made after a spawn, off the restart's path, and closed with the daemon.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.supervisor.channel import Channel
from corral.supervisor.process import READINESS_KEYS
from corral.supervisor.spawn import SpawnSpec, is_node

if TYPE_CHECKING:
    from corral.daemon.kernel import Daemon
    from corral.supervisor.process import ManagedProcess
    from corral.supervisor.slot import Slot

SPARE_CHANNELS = 1  # a daemon-wide spare: a second crash in the same turn makes its own


def _key(slot: Slot) -> tuple[Any, ...]:
    """What a spec is made of (dicts by identity: they are replaced, never changed)."""
    proc = slot.proc
    return (
        proc.options, proc.env, proc.log_paths, proc.pid_path, proc.name, proc.pm_id,
        proc.unique_id, proc.instance, proc.script, proc.interpreter, proc.is_command,
        proc.listen_port, slot.kernel.node_preload,
    )  # fmt: skip


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return all(x is y or (not isinstance(x, dict) and x == y) for x, y in zip(a, b, strict=True))


def _tail_keys(proc: ManagedProcess) -> frozenset[str]:
    """The variables :meth:`ManagedProcess.child_env` sets after pm2_env's fields: they win
    over a runtime field of the same name."""
    keys = {str(proc.options.get("instance_var") or "NODE_APP_INSTANCE"), "CORRAL_INSTANCE"}
    if proc.options.get("increment_var"):
        keys.add(str(proc.options["increment_var"]))
    if proc.listen_port is not None or proc.options.get("port") is not None:
        keys.add("PORT")
    if proc.interpreter != "none" and "python" in Path(proc.interpreter).name:
        keys.add("PYTHONUNBUFFERED")
    return frozenset(keys)


@dataclass
class PreparedSpec:
    """A slot's spec without the fields that change at every spawn."""

    key: tuple[Any, ...]
    argv: list[str]
    cwd: str
    env: dict[str, str]  # child_env without the runtime fields (those of env restored)
    runtime_keys: frozenset[str]  # laid over at each spawn
    tail: frozenset[str]

    @classmethod
    def make(cls, slot: Slot, key: tuple[Any, ...]) -> PreparedSpec:
        proc = slot.proc
        spec = slot._spawn_spec()
        runtime = proc._runtime_fields()
        tail = _tail_keys(proc)
        env = spec.env
        for name in runtime:
            if name in tail or name in READINESS_KEYS:
                continue
            if name in proc.env:
                env[name] = proc.env[name]  # what a non-scalar runtime value leaves
            else:
                env.pop(name, None)
        return cls(key, spec.argv, spec.cwd, env, frozenset(runtime), tail)

    def spec(self, proc: ManagedProcess) -> SpawnSpec:
        """The spec of the spawn happening now, as ``Slot._spawn_spec`` would make it."""
        env = dict(self.env)
        runtime = proc._runtime_fields()
        if runtime.keys() != self.runtime_keys:
            raise LookupError("the runtime fields changed")  # never here today; be exact
        for name, value in runtime.items():
            if name in self.tail or name in READINESS_KEYS:
                continue
            if isinstance(value, bool):
                env[name] = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                env[name] = str(value)
        return SpawnSpec(argv=list(self.argv), env=env, cwd=self.cwd)


def spawn_spec(slot: Slot) -> SpawnSpec:
    """The spec of ``slot``'s spawn happening now: from its prepared spec while that is
    current, else made afresh (and kept, for a slot its policy restarts)."""
    proc = slot.proc
    if is_node(proc.interpreter) and (proc.cluster or proc.shares_socket):
        return slot._spawn_spec()  # the preload it takes depends on more: made each time
    prepared: PreparedSpec | None = slot.next_spec
    key = _key(slot)
    if prepared is not None and _same(prepared.key, key):
        try:
            return prepared.spec(proc)
        except LookupError:
            pass
    slot.next_spec = None
    if not slot.restarting:
        return slot._spawn_spec()  # an app its policy never restarted keeps nothing
    prepared = slot.next_spec = PreparedSpec.make(slot, key)
    return prepared.spec(proc)


# -- the spare channel ------------------------------------------------------------


class _Spares:
    def __init__(self) -> None:
        self.channels: list[Channel] = []
        self.pending = False

    def close(self) -> None:
        while self.channels:
            self.channels.pop().close()


_SPARES: weakref.WeakKeyDictionary[Daemon, _Spares] = weakref.WeakKeyDictionary()


def channel(kernel: Daemon) -> Channel:
    """A new channel for a spawn: the spare one if there is one (another is made after
    this spawn), else made now."""
    spares = _SPARES.get(kernel)
    if spares is None:
        spares = _SPARES[kernel] = _Spares()
        weakref.finalize(kernel, spares.close)
    if not spares.pending and kernel.loop is not None:
        spares.pending = True
        kernel.loop.call_soon(_refill, kernel, spares)
    if spares.channels:
        return spares.channels.pop()
    return kernel.fds.call(Channel, _ignore)


def _refill(kernel: Daemon, spares: _Spares) -> None:
    spares.pending = False
    if kernel.shutting_down:
        spares.close()
        return
    while len(spares.channels) < SPARE_CHANNELS:
        try:
            spares.channels.append(Channel(_ignore))
        except OSError:
            return  # out of fds: a spawn makes its own (through the reserve)


def close_spares(kernel: Daemon) -> None:
    """Close the daemon's spare channels (it is shutting down)."""
    spares = _SPARES.get(kernel)
    if spares is not None:
        spares.close()


def _ignore(message: Any) -> None:
    return None
