"""The process state machine and the restart policy, as data and pure functions.

Nothing here reads the clock or touches a file or a process: the daemon passes
``now_ms`` in, applies the state and history it gets back, and emits one event
per change, so every rule is unit-tested without a process.

States are PM2's words (``pm2_env.status``), with PM2's meaning: a spawn is
``launching``, then ``online`` in the same call (the ``ready`` event), unless
the app has ``wait_ready``: then ``online`` comes when it says ready or
``listen_timeout`` passes, as PM2's ``God.js``. Readiness itself is not a state:
it is the child's own field (``ready``, ``ready_by`` in ``pm2_env``, see
:attr:`corral.supervisor.process.ManagedProcess.ready`). The edges are one table,
``TRANSITIONS``; :func:`next_state` is the only way to move and raises
:class:`IllegalTransition` for an edge the table lacks. The groups answer the
daemon's questions by membership: a live pid (``SIGNALLABLE_STATES``), wanted
running (``RUNNING_STATES``), at rest (``STOPPED_STATES``).

:func:`decide_exit` is PM2's ``God.handleExit``: an exit we asked for completes
the stop; ``autorestart: false`` or an exit code in ``stop_exit_codes`` ends in
``stopped``; an exit within ``min_uptime`` of its spawn, while the app is
younger than ``min_uptime * max_restarts`` since its (re)start, is unstable,
and ``max_restarts`` of them make it ``errored`` (``created_at`` cleared, so it
stays down until a user starts it); any other exit waits ``restart_delay``, or
the exponential backoff (E, then ``floor(min(15000, prev * 1.5))``, back to E
after 30 s of uptime or a manual restart), in ``waiting restart``. As in PM2,
``max_restarts: 0`` allows no crash restart at all: the first crash errors.

Where corral differs from PM2, on purpose:

- PM2 overwrites ``errored`` with ``waiting restart`` when a restart delay is
  set, and the app then shows ``waiting restart`` forever. corral keeps ``errored``.
- PM2 counts unstable exits, and may mark ``errored``, even for exits it does
  not restart (a user's stop, ``autorestart: false``, ``stop_exit_codes``);
  corral leaves the counters alone then: only a crash can make an app errored.
- PM2 bumps ``prev_restart_delay`` on every exit; corral only when it restarts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType
from typing import Any

from corral.errors import OptionError, StateError, shorten

# uptime after which the backoff starts again from E; the daemon's environment may
# shorten it (tests), as PM2's EXP_BACKOFF_RESET_TIMER does
EXP_BACKOFF_RESET_MS = int(os.environ.get("CORRAL_EXP_BACKOFF_RESET_MS") or 30000)
EXP_BACKOFF_MAX_MS = 15000


class ProcessState(str, Enum):
    LAUNCHING = "launching"
    ONLINE = "online"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERRORED = "errored"
    WAITING_RESTART = "waiting restart"


RUNNING_STATES = frozenset({ProcessState.LAUNCHING, ProcessState.ONLINE})
SIGNALLABLE_STATES = frozenset({ProcessState.LAUNCHING, ProcessState.ONLINE, ProcessState.STOPPING})
STOPPED_STATES = frozenset({ProcessState.STOPPED, ProcessState.ERRORED})


class Event(str, Enum):
    SPAWN = "spawn"
    READY = "ready"
    SPAWN_FAILED = "spawn_failed"
    STOP = "stop"
    EXITED = "exited"
    CRASHED = "crashed"
    FINISHED = "finished"
    OVERLIMIT = "overlimit"
    KILL_FAILED = "kill_failed"
    RELOAD = "reload"  # online -> launching: a wait_ready child starts beside the old one
    ROLLBACK = "rollback"  # launching -> online: the new child failed, the old one serves on


_S, _E = ProcessState, Event

TRANSITIONS: Mapping[tuple[ProcessState, Event], ProcessState] = MappingProxyType(
    {
        (_S.STOPPED, _E.SPAWN): _S.LAUNCHING,
        (_S.ERRORED, _E.SPAWN): _S.LAUNCHING,
        (_S.WAITING_RESTART, _E.SPAWN): _S.LAUNCHING,  # the delay ran out
        (_S.LAUNCHING, _E.READY): _S.ONLINE,
        (_S.LAUNCHING, _E.SPAWN_FAILED): _S.ERRORED,
        (_S.LAUNCHING, _E.STOP): _S.STOPPING,
        (_S.ONLINE, _E.STOP): _S.STOPPING,
        (_S.WAITING_RESTART, _E.STOP): _S.STOPPED,  # no pid: cancelling the timer is the stop
        (_S.STOPPING, _E.EXITED): _S.STOPPED,
        (_S.STOPPING, _E.KILL_FAILED): _S.ERRORED,  # survived SIGKILL
        (_S.LAUNCHING, _E.CRASHED): _S.WAITING_RESTART,
        (_S.ONLINE, _E.CRASHED): _S.WAITING_RESTART,
        (_S.LAUNCHING, _E.FINISHED): _S.STOPPED,
        (_S.ONLINE, _E.FINISHED): _S.STOPPED,
        (_S.LAUNCHING, _E.OVERLIMIT): _S.ERRORED,
        (_S.ONLINE, _E.OVERLIMIT): _S.ERRORED,
        (_S.ONLINE, _E.RELOAD): _S.LAUNCHING,
        (_S.LAUNCHING, _E.ROLLBACK): _S.ONLINE,
    }
)


class IllegalTransition(StateError):
    """An event the current state has no edge for, e.g. ``ready`` while ``stopped``."""

    def __init__(self, state: ProcessState, event: Event) -> None:
        super().__init__(f"cannot {event.value!r} a process that is {state.value!r}")
        self.state = state
        self.event = event


def next_state(state: ProcessState, event: Event) -> ProcessState:
    """The state ``event`` leads to from ``state``; raises IllegalTransition if none."""
    try:
        return TRANSITIONS[(ProcessState(state), Event(event))]
    except KeyError:
        raise IllegalTransition(ProcessState(state), Event(event)) from None


@dataclass(frozen=True)
class RestartPolicy:
    """The options that decide whether, and when, an exited process comes back."""

    autorestart: bool = True
    stop_exit_codes: frozenset[int] = frozenset()
    min_uptime: int = 1000  # ms; a shorter run is an unstable one
    max_restarts: int = 16  # unstable restarts in a row before errored
    restart_delay: int = 0  # ms
    exp_backoff_restart_delay: int = 0  # ms, 0 = off; wins over restart_delay

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> RestartPolicy:
        """Read the policy from canonical (snake_case) app options; missing or None = default."""
        defaults = cls()
        return cls(
            autorestart=_bool(options, "autorestart", defaults.autorestart),
            stop_exit_codes=_exit_codes(options.get("stop_exit_codes")),
            min_uptime=_int(options, "min_uptime", defaults.min_uptime),
            max_restarts=_int(options, "max_restarts", defaults.max_restarts),
            restart_delay=_int(options, "restart_delay", defaults.restart_delay),
            exp_backoff_restart_delay=_int(
                options, "exp_backoff_restart_delay", defaults.exp_backoff_restart_delay
            ),
        )


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _int(options: Mapping[str, Any], name: str, default: int) -> int:
    value = options.get(name)
    if value is None:
        return default
    number = _as_int(value)
    if number is None or number < 0:
        raise OptionError(f"{name} must be an integer >= 0, got {shorten(value)}", field=name)
    return number


def _bool(options: Mapping[str, Any], name: str, default: bool) -> bool:
    value = options.get(name)
    if value is None:
        return default
    # PM2 also honours the strings, as its ecosystem files sometimes carry them
    if value in (True, False, "true", "false"):
        return value in (True, "true")
    raise OptionError(f"{name} must be true or false, got {shorten(value)}", field=name)


def _exit_codes(value: Any) -> frozenset[int]:
    if value is None:
        return frozenset()
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    codes = [_as_int(v) for v in values]
    if any(code is None for code in codes):
        raise OptionError(
            f"stop_exit_codes must be an exit code or a list of exit codes, got {shorten(value)}",
            field="stop_exit_codes",
        )
    return frozenset(codes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RestartHistory:
    """The counters PM2 keeps in ``pm2_env``; all times are epoch milliseconds."""

    created_at: int | None = None  # set at start and manual restart; None after errored
    pm_uptime: int = 0  # last spawn
    restart_time: int = 0
    unstable_restarts: int = 0
    prev_restart_delay: int = 0


@dataclass(frozen=True)
class ExitDecision:
    """What :func:`decide_exit` tells the daemon to do with an exited process."""

    event: Event
    state: ProcessState
    delay_ms: int  # before the respawn, CRASHED only
    history: RestartHistory
    reason: str


def restart_delay(policy: RestartPolicy, history: RestartHistory) -> int:
    """The delay before the next crash restart, in ms."""
    first = policy.exp_backoff_restart_delay
    if not first:
        return policy.restart_delay
    if not history.prev_restart_delay:
        return first
    # floor(prev * 1.5) in integers
    return min(EXP_BACKOFF_MAX_MS, history.prev_restart_delay * 3 // 2)


def _is_unstable(policy: RestartPolicy, history: RestartHistory, now_ms: int) -> bool:
    if history.created_at is None:
        return False
    young = now_ms - history.created_at < policy.min_uptime * policy.max_restarts
    return young and now_ms - history.pm_uptime < policy.min_uptime


def decide_exit(
    state: ProcessState,
    policy: RestartPolicy,
    history: RestartHistory,
    exit_code: int | None,
    now_ms: int,
) -> ExitDecision:
    """Decide what follows the exit of a process that was in ``state`` (God.handleExit)."""

    def decision(event: Event, reason: str, hist: RestartHistory, delay: int = 0) -> ExitDecision:
        return ExitDecision(event, next_state(state, event), delay, hist, reason)

    if state == ProcessState.STOPPING:
        return decision(Event.EXITED, "stopped by user", history)
    if not policy.autorestart:
        return decision(Event.FINISHED, "autorestart is false", history)
    if exit_code is not None and exit_code in policy.stop_exit_codes:
        return decision(Event.FINISHED, f"exit code {exit_code} is in stop_exit_codes", history)

    if _is_unstable(policy, history, now_ms):
        history = replace(history, unstable_restarts=history.unstable_restarts + 1)
    if history.unstable_restarts >= policy.max_restarts:
        history = replace(history, unstable_restarts=0, created_at=None)
        reason = f"unstable restarts reached max_restarts ({policy.max_restarts})"
        return decision(Event.OVERLIMIT, reason, history)

    delay = restart_delay(policy, history)
    if policy.exp_backoff_restart_delay:
        history = replace(history, prev_restart_delay=delay)
    return decision(Event.CRASHED, f"restart in {delay} ms", history, delay)


def on_start(history: RestartHistory, now_ms: int) -> RestartHistory:
    """A user start: the unstable window and the backoff begin afresh."""
    return replace(history, created_at=now_ms, unstable_restarts=0, prev_restart_delay=0)


def on_spawn(history: RestartHistory, now_ms: int, *, is_restart: bool) -> RestartHistory:
    """A spawn happened at ``now_ms``; a restart (crash or manual) also counts one."""
    restarts = history.restart_time + 1 if is_restart else history.restart_time
    return replace(history, pm_uptime=now_ms, restart_time=restarts)


def on_manual_restart(history: RestartHistory, now_ms: int) -> RestartHistory:
    """A restart or reload by the user (PM2's resetState); on_spawn counts the restart."""
    return replace(history, created_at=now_ms, unstable_restarts=0, prev_restart_delay=0)


def on_reset(history: RestartHistory, now_ms: int) -> RestartHistory:
    """`corral reset` (PM2's resetMetaProcessId): the counters start again from now."""
    return replace(history, created_at=now_ms, unstable_restarts=0, restart_time=0)


def reset_backoff_if_stable(history: RestartHistory, now_ms: int) -> RestartHistory:
    """Forget the backoff once the process has been up longer than EXP_BACKOFF_RESET_MS."""
    if history.prev_restart_delay and now_ms - history.pm_uptime > EXP_BACKOFF_RESET_MS:
        return replace(history, prev_restart_delay=0)
    return history
