"""One managed process as the daemon sees it: identity, options, state, counters.

The daemon owns every mutation; this module only holds the fields and shows
them the way ``pm2 jlist`` does.
"""

from __future__ import annotations

import getpass
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.supervisor.envshare import shared_slot
from corral.supervisor.lifecycle import ProcessState, RestartHistory, RestartPolicy
from corral.supervisor.logs import is_null_path
from corral.supervisor.spawn import SpawnSpec, interpreter_name

if TYPE_CHECKING:
    import asyncio
    import subprocess

    from corral.supervisor.channel import Channel
    from corral.supervisor.lines import LineWriter
    from corral.supervisor.logfile import LogFile
    from corral.supervisor.monitor import Started
    from corral.supervisor.readygate import ReadyGate
    from corral.supervisor.slot import Slot
    from corral.supervisor.stdin import StdinPipe

__all__ = ["Child", "ManagedProcess", "SpawnSpec"]

# corral's own readiness fields (not in PM2): kept out of the child's environment
READINESS_KEYS = ("ready", "ready_by", "ready_at")

# what ended the wait for a readiness signal without one (``ready_by``; ``ready`` false)
TIMED_OUT = "listen_timeout"


def now_ms() -> int:
    """The clock of histories, exits and readiness: ms since the epoch."""
    return int(time.time() * 1000)


@dataclass(eq=False)
class Child:
    """One program run of a process slot, from spawn to exit.

    A slot has one child, except during a reload, when the new child starts
    beside the old one, which is ``retired`` until it has exited.
    """

    popen: subprocess.Popen
    pid: int
    started: Started  # start time of pid (or a bracket of it), to tell it from a reused pid
    exited: asyncio.Future  # resolves with the exit code
    ready: asyncio.Future  # resolves with how it became ready ("ready message", ...)
    ready_by: str | None = None  # what ended the wait for readiness (see ManagedProcess.ready)
    ready_at: int | None = None  # when, epoch ms
    channel: Channel | None = None
    pidfd: int | None = None
    writers: dict[int, tuple[str, LineWriter]] = field(default_factory=dict)  # fd -> writer
    on_trial: bool = False  # a reload's new child: its exit is the reload's, not the policy's
    retired: bool = False  # replaced by a reload: its exit changes nothing
    cgroup: Path | None = None  # the cgroup it was born in (corral.supervisor.cgroup), if any
    stdin: StdinPipe | None = None  # the write end of its stdin (corral.supervisor.stdin)
    # plugins' conditions on its readiness (corral.supervisor.readygate), and the core's
    # own signal once it came while a gate was still closed
    gates: tuple[ReadyGate, ...] = ()
    signal_by: str | None = None
    ready_bound: float = 3.0  # seconds: listen_timeout, or a gate's bound if longer
    fail_reason: str | None = None  # why a plugin ended it as a crash (Stopper.fail)


@dataclass(eq=False, slots=True)
class ManagedProcess:
    """A process slot: it keeps its pm_id across restarts.

    Its fields are slots (a thousand apps hold no attribute dict each): a plugin keeps
    its own per-app state in ``daemon.state()``, not in attributes of its own here.
    """

    pm_id: int
    name: str
    options: dict[str, Any]  # canonical, validated options
    # the app's environment snapshot (caller env + env option), shared with the apps
    # that have the same one (corral.supervisor.envshare): replaced, never changed
    env: dict[str, str]
    script: str  # resolved script path (or a command line for bash -c)
    interpreter: str  # interpreter path, or "none"
    is_command: bool = False
    instance: int = 0  # NODE_APP_INSTANCE
    unique_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: ProcessState = ProcessState.STOPPED
    history: RestartHistory = field(default_factory=RestartHistory)
    child: Child | None = None
    exit_code: int | None = None
    # the last exit of the slot's child, kept across restarts: {code, signal, at (ms)}
    last_exit: dict[str, Any] | None = None
    restart_timer: asyncio.TimerHandle | None = None
    ready_timer: asyncio.TimerHandle | None = None
    log_paths: dict[str, Path | None] = field(default_factory=dict)
    pid_path: Path | None = None
    log_files: list[LogFile] = field(default_factory=list)
    last_reason: str = ""
    # a plugin's hold on its launch (corral_hold_launch), kept in the state file so the
    # daemon after an update or a crash asks the plugin again; a spawn or a stop ends it
    held_by: str = ""
    monit: tuple[int, float] = (0, 0.0)
    instances_of_app: int = 1  # how many processes share this name, for pm2_env.instances
    listen_port: int | None = None  # the port of the shared socket, once bound
    # groups of exited children, not empty; replaced, never added to in place, so none
    # at first is the one empty frozenset, not a set per app
    leftover_groups: set[int] = field(default=frozenset())  # type: ignore[assignment]
    # a stop in progress: the child's exit is held until the whole tree is gone, so the
    # slot shows "stopped" only when nothing of it runs (and never in a restart's middle)
    stop_in_progress: bool = False
    held_exit: tuple[Child, int] | None = None
    config_file: str | None = (
        None  # the config file that started it (corral.daemon.commands.reconcile)
    )
    ran_before_stop: bool = False  # the last stop_process ended a running child
    # set by the watch plugin: pm2_env.watch while this instance is not watched as its
    # option says (stopped by a user: false, as PM2), or watched without it (true)
    watch_shown: Any = None
    # what plugins show in pm2_env, by key (DaemonAPI.show): the health plugin's
    # "health_status"
    plugin_fields: dict[str, Any] | None = None
    slot: Slot = field(init=False, repr=False)  # what acts on this record (corral.supervisor.slot)
    _json_cache: tuple[tuple, str, bool] | None = field(default=None, repr=False)
    _policy_cache: tuple[dict, RestartPolicy] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child is not None else None

    @property
    def exited(self) -> asyncio.Future | None:
        return self.child.exited if self.child is not None else None

    @property
    def cluster(self) -> bool:
        return self.options.get("exec_mode") == "cluster"

    @property
    def shares_socket(self) -> bool:
        """Whether the daemon binds this app's socket (``listen``, or ``port`` in cluster mode)."""
        return bool(self.options.get("listen")) or (
            self.cluster and self.options.get("port") is not None
        )

    @property
    def listen_address(self) -> str | None:
        if self.options.get("listen"):
            return str(self.options["listen"])
        if self.cluster and self.options.get("port") is not None:
            return f":{self.options['port']}"
        return None

    @property
    def waits_for_ready(self) -> bool:
        """Whether the child is ``launching`` until it is ready or listen_timeout passes
        (``wait_ready``, as PM2's God.js); any other child is ``online`` when spawned."""
        return bool(self.options.get("wait_ready"))

    @property
    def gated(self) -> bool:
        """Whether the current child's readiness waits for a plugin's gate too (a
        readiness check): a reload of it waits for that, as with ``wait_ready``."""
        return self.child is not None and bool(self.child.gates)

    @property
    def expects_ready_signal(self) -> bool:
        """Whether readiness comes from a signal (the ready message, sd_notify READY=1,
        the node preload's "listening"), bounded by listen_timeout; else it is the spawn."""
        return bool(self.options.get("wait_ready")) or self.cluster or self.shares_socket

    @property
    def listen_timeout(self) -> float:
        """The bound of the wait for readiness, in seconds (PM2's default, 3 s)."""
        return int(self.options.get("listen_timeout") or 3000) / 1000

    @property
    def ready(self) -> tuple[bool, str | None, int | None]:
        """The current child's readiness: (ready, by what, when in epoch ms).

        ``by`` is ``"spawned"`` (an app that sends no signal), ``"ready message"``,
        ``"sd_notify READY=1"`` or ``"listening"``; ``"listen_timeout"`` with ready
        false when the bound passed without a signal; None while waiting, or with no child.
        """
        child = self.child
        if child is None or child.ready_by is None:
            return False, None, None
        return child.ready_by != TIMED_OUT, child.ready_by, child.ready_at

    @property
    def namespace(self) -> str:
        return str(self.options.get("namespace") or "default")

    @property
    def exec_mode(self) -> str:
        return "cluster_mode" if self.cluster else "fork_mode"

    @property
    def instances(self) -> int:
        return self.instances_of_app

    def pm2_env(self, *, with_env: bool = True) -> dict[str, Any]:
        """``pm2_env`` as PM2 prints it: the options, paths, counters and (optionally) env."""
        env: dict[str, Any] = {}
        if with_env:
            # PM2 copies every variable to the top level; options and runtime fields win
            env.update(self.env)
        env.update(self._fixed_fields())
        env.update(self._runtime_fields())
        if with_env:
            env["env"] = dict(self.env)
        return env

    def _fixed_fields(self) -> dict[str, Any]:
        """What changes only with the options, the env or the slot: options, paths, names."""
        fields = {k: v for k, v in self.options.items() if k != "env"}
        fields.update(
            {
                "name": self.name,
                "namespace": self.namespace,
                "pm_id": self.pm_id,
                "unique_id": self.unique_id,
                "exec_mode": self.exec_mode,
                "exec_interpreter": interpreter_name(self.interpreter),
                "pm_exec_path": self.script,
                "pm_cwd": self.options.get("cwd"),
                "pm_out_log_path": self._log_path_shown("out", "out_file"),
                "pm_err_log_path": self._log_path_shown("err", "error_file"),
                "pm_pid_path": _path_or_none(self.pid_path),
                "NODE_APP_INSTANCE": self.instance,
                "node_args": self.options.get("node_args") or [],
                "args": self.options.get("args") or [],
                "username": _username(),
                "version": "N/A",
                "versioning": None,
                "vizion_running": False,
                "km_link": False,
            }
        )
        combined = self._log_path_shown("combined", "log_file")
        if combined:
            fields["pm_log_path"] = combined
        return fields

    def _log_path_shown(self, stream: str, option: str) -> str | None:
        """The file a stream goes to; ``/dev/null`` when the option says ``/dev/null`` or
        ``NULL``, as PM2 shows it (the daemon writes no file then)."""
        path = self.log_paths.get(stream)
        if path:
            return str(path)
        if is_null_path(self.options.get(option)) and not self.options.get("disable_logs"):
            return os.devnull
        return None

    def _runtime_fields(self) -> dict[str, Any]:
        h = self.history
        fields = {
            "status": self.state.value,
            "instances": self.instances,
            "pm_uptime": h.pm_uptime,
            "created_at": h.created_at,
            "restart_time": h.restart_time,
            "unstable_restarts": h.unstable_restarts,
            "prev_restart_delay": h.prev_restart_delay,
            "exit_code": self.exit_code,
            "last_exit": self.last_exit,  # corral's own: code or signal, and when
            # corral's own: readiness, beside the status (not in PM2)
            **dict(zip(READINESS_KEYS, self.ready, strict=True)),
            # corral's own: the app's log files that lost lines or cannot be written (not in PM2)
            "log_drops": [f.status() for f in self.log_files if f.dropped or f.error],
        }
        if self.plugin_fields:
            fields.update(self.plugin_fields)
        if "watch" in self.options:  # here, not in the fixed part: it follows watch_shown
            watch = self.watch_shown
            fields["watch"] = self.options["watch"] if watch is None else watch
        return fields

    def restart_policy(self) -> RestartPolicy:
        """The restart policy of the options (parsed once per options dict: they are
        replaced, never changed in place)."""
        cached = self._policy_cache
        if cached is None or cached[0] is not self.options:
            cached = self._policy_cache = (self.options, RestartPolicy.from_options(self.options))
        return cached[1]

    def to_dict(self) -> dict[str, Any]:
        """The ``pm2 jlist`` entry for this process."""
        online = self.state in (ProcessState.ONLINE, ProcessState.LAUNCHING)
        memory, cpu = self.monit if online else (0, 0.0)
        return {
            "pid": self.pid or 0,
            "name": self.name,
            "pm_id": self.pm_id,
            "monit": {"memory": memory, "cpu": cpu},
            "pm2_env": self.pm2_env(),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON, the same object (keys in another order), made faster:
        the part of ``pm2_env`` that changes only with the options or env is encoded once."""
        online = self.state in (ProcessState.ONLINE, ProcessState.LAUNCHING)
        memory, cpu = self.monit if online else (0, 0.0)
        runtime = self._runtime_fields()
        head = _JSON.encode(
            {"pid": self.pid or 0, "name": self.name, "pm_id": self.pm_id,
             "monit": {"memory": memory, "cpu": cpu}}
        )  # fmt: skip
        return f'{head[:-1]},"pm2_env":{{{self._fixed_json(runtime)}{_JSON.encode(runtime)[1:]}}}'

    def _fixed_json(self, runtime: dict[str, Any]) -> str:
        """The env copy, the fixed fields and ``env``, encoded, ending in a comma.

        Cached while the options, env, log paths and pid path are the same objects
        (they are replaced, never changed in place) and the slot's names are the same.
        The two encodings of the env are kept once per shared env (envshare), not per
        app, unless a variable is named like a field (then the field takes its place).
        """
        key = (self.options, self.env, self.log_paths, self.pid_path, self.name, self.instance)
        cached = self._json_cache
        if cached is None or not all(a is b for a, b in zip(cached[0], key, strict=True)):
            fixed = self._fixed_fields()
            env = self.env
            if env.keys().isdisjoint(fixed) and "env" not in env:
                shown = {k: v for k, v in fixed.items() if k not in runtime}
                cached = (key, _JSON.encode(shown)[1:-1], True)
            else:
                fields = {k: v for k, v in env.items() if k not in runtime}
                fields.update((k, v) for k, v in fixed.items() if k not in runtime)
                fields["env"] = env
                cached = (key, _JSON.encode(fields)[1:-1] + ",", False)
            self._json_cache = cached
        if not cached[2]:
            return cached[1]
        top, whole = self._env_json(runtime)
        return f'{top}{cached[1]},"env":{whole},'

    def _env_json(self, runtime: dict[str, Any]) -> tuple[str, str]:
        """The env's variables that are no runtime field, encoded as members ending in a
        comma (or empty), and the whole env as an object; kept on the shared env."""
        env = self.env
        key = "watch" in runtime
        found = env.json.get(key)
        if found is None:
            top = _JSON.encode({k: v for k, v in env.items() if k not in runtime})[1:-1]
            found = env.json[key] = (top + "," if top else "", _JSON.encode(env))
        return found

    def child_env(self) -> dict[str, str]:
        """What the child sees: its env plus every scalar pm2_env field, as PM2."""
        env = dict(self.env)
        for key, value in self.pm2_env(with_env=False).items():
            if key in READINESS_KEYS:
                continue  # of the run before this one, if any
            if isinstance(value, bool):
                env[key] = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                env[key] = str(value)
        instance_var = self.options.get("instance_var") or "NODE_APP_INSTANCE"
        env[instance_var] = str(self.instance)
        increment_var = self.options.get("increment_var")
        if increment_var:
            env[increment_var] = str(int(self.env.get(increment_var, 0) or 0) + self.instance)
        port = self.listen_port if self.listen_port is not None else self.options.get("port")
        if port is not None:
            env["PORT"] = str(port)
        env["CORRAL_INSTANCE"] = str(self.instance)
        if self.interpreter != "none" and "python" in Path(self.interpreter).name:
            env["PYTHONUNBUFFERED"] = "1"
        return env

    def uptime_ms(self) -> int:
        if self.state is not ProcessState.ONLINE or not self.history.pm_uptime:
            return 0
        return int(time.time() * 1000) - self.history.pm_uptime

    def list_parts(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """For the compact list (corral.daemon.commands.rows): the objects the fixed part
        of ``pm2_env`` is made of (replaced, never changed in place, so a cache of that
        part holds while each is the same object), and the runtime fields."""
        key = (self.options, self.env, self.log_paths, self.pid_path, self.name, self.instance)
        runtime = self._runtime_fields()
        if self.plugin_fields:  # the row's shape names them: a key they come or go with
            key = (*key, tuple(self.plugin_fields))
        return key, runtime


shared_slot(ManagedProcess, "env")  # set, the env is the one shared dict (envshare)

_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


def _path_or_none(path: Path | None) -> str | None:
    return str(path) if path else None


_USER: list[str] = []


def _username() -> str:
    if not _USER:
        try:
            _USER.append(getpass.getuser())
        except Exception:
            _USER.append("unknown")
    return _USER[0]
