"""The daemon as a plugin sees it: ``DaemonAPI``, and the helpers plugins share.

Daemon-side hooks receive a :class:`DaemonAPI`, never the daemon itself, and
each process slot as a :class:`Process`, a read-only view: what is here is the
whole contract, documented in ``docs/plugins.md``, and the daemon behind it may
change shape without breaking a plugin. The helpers
(:func:`parse_bytes`, :func:`parse_ms`, :func:`date_formatter`,
:class:`TreeSampler`, :func:`is_node`) load on first use, so importing this
module costs a plugin nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import signal
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

if TYPE_CHECKING:
    from corral.cli.logtail import order_keys as log_order_keys
    from corral.cli.logtail import time_reader as log_time_reader
    from corral.cli.words import health_word
    from corral.client.connection import running_client
    from corral.daemon.kernel import Daemon
    from corral.daemon.settings import read as read_settings
    from corral.datefmt import date_formatter
    from corral.errors import shorten
    from corral.hooks import load_plugins
    from corral.options.config import is_config_file, load_config, read_deploy
    from corral.options.convert import parse_bytes, parse_ms
    from corral.options.portable import ConfigFile
    from corral.options.secrets import is_secret, mask_data, secret_values
    from corral.paths import dump_file, ensure_home, settings_file
    from corral.paths import home as corral_home
    from corral.rpc.aio import RPCServer
    from corral.rpc.wire import pid_alive
    from corral.supervisor.asuser import on_this_thread as as_account
    from corral.supervisor.credentials import Credentials as Account
    from corral.supervisor.credentials import resolve as app_account
    from corral.supervisor.fdreserve import RESERVE as FD_RESERVE
    from corral.supervisor.fdreserve import fd_limit
    from corral.supervisor.lifecycle import ProcessState
    from corral.supervisor.logfile import LogFile
    from corral.supervisor.monitor import TreeSampler
    from corral.supervisor.process import ManagedProcess
    from corral.supervisor.spawn import SpawnSpec, is_node

T = TypeVar("T")

# the signals the daemon handles itself, which no plugin may take (DaemonAPI.handle_signal)
_DAEMON_SIGNALS = frozenset(
    (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD)
)

# the helpers, loaded on first use: name -> (module, its name there)
_HELPERS = {
    "parse_bytes": ("options.convert", "parse_bytes"),
    "parse_ms": ("options.convert", "parse_ms"),
    "date_formatter": ("datefmt", "date_formatter"),
    "TreeSampler": ("supervisor.monitor", "TreeSampler"),
    "is_node": ("supervisor.spawn", "is_node"),
    "SpawnSpec": ("supervisor.spawn", "SpawnSpec"),
    "Account": ("supervisor.credentials", "Credentials"),
    "app_account": ("supervisor.credentials", "resolve"),
    "as_account": ("supervisor.asuser", "on_this_thread"),
    "dump_file": ("paths", "dump_file"),
    "load_plugins": ("hooks", "load_plugins"),
    "running_client": ("client.connection", "running_client"),
    "corral_home": ("paths", "home"),
    "ensure_home": ("paths", "ensure_home"),
    "settings_file": ("paths", "settings_file"),
    "read_settings": ("daemon.settings", "read"),
    "shorten": ("errors", "shorten"),
    "pid_alive": ("rpc.wire", "pid_alive"),
    "fd_limit": ("supervisor.fdreserve", "fd_limit"),
    "load_config": ("options.config", "load_config"),
    "read_deploy": ("options.config", "read_deploy"),
    "log_time_reader": ("cli.logtail", "time_reader"),
    "log_order_keys": ("cli.logtail", "order_keys"),
    "health_word": ("cli.words", "health_word"),
    "is_config_file": ("options.config", "is_config_file"),
    "is_secret": ("options.secrets", "is_secret"),
    "mask_data": ("options.secrets", "mask_data"),
    "secret_values": ("options.secrets", "secret_values"),
    "FD_RESERVE": ("supervisor.fdreserve", "RESERVE"),
}

__all__ = [
    "FD_RESERVE",
    "Account",
    "DaemonAPI",
    "Process",
    "SpawnSpec",
    "TreeSampler",
    "app_account",
    "as_account",
    "corral_home",
    "date_formatter",
    "dump_file",
    "ensure_home",
    "fd_limit",
    "health_word",
    "is_config_file",
    "is_node",
    "is_secret",
    "load_config",
    "load_plugins",
    "log_order_keys",
    "log_time_reader",
    "mask_data",
    "parse_bytes",
    "parse_ms",
    "pid_alive",
    "plugin_names",
    "read_deploy",
    "read_portable",
    "read_settings",
    "running_client",
    "secret_values",
    "settings_file",
    "shorten",
]


@runtime_checkable
class Process(Protocol):
    """A process slot as a plugin sees it: what a hook's ``app`` is and
    :meth:`DaemonAPI.processes` lists.

    Read-only: read the fields (the daemon changes them as the app runs) and act on
    the slot through :class:`DaemonAPI` (:meth:`~DaemonAPI.restart_process`,
    :meth:`~DaemonAPI.stop_process`, :meth:`~DaemonAPI.emit`). The slot keeps its
    ``pm_id`` across restarts. Only the watch plugin writes one field,
    :attr:`watch_shown`.
    """

    @property
    def pm_id(self) -> int:
        """Its id, kept across restarts."""

    @property
    def name(self) -> str:
        """The app's name (the instances of a scaled app share it)."""

    @property
    def namespace(self) -> str:
        """The app's namespace, ``"default"`` unless its options set one."""

    @property
    def options(self) -> Mapping[str, Any]:
        """The canonical, validated options, the plugins' among them."""

    @property
    def interpreter(self) -> str:
        """The interpreter's path, or ``"none"`` for an executable."""

    @property
    def state(self) -> ProcessState:
        """Its state (:class:`corral.ProcessState`); ``.value`` is PM2's status word."""

    @property
    def instances_of_app(self) -> int:
        """How many processes share its name now (``corral scale`` changes it)."""

    @property
    def pid(self) -> int | None:
        """The pid of its running program, None while none runs."""

    @property
    def child(self) -> object | None:
        """The current run of its program, None while none runs: compare it with ``is``
        to tell one run from the next (its pid is :attr:`pid`)."""

    @property
    def log_paths(self) -> Mapping[str, Path | None]:
        """``{"out", "err", "combined"}``: each log file's path, None when that log is off."""

    @property
    def pid_path(self) -> Path | None:
        """Its pid file, or None."""

    watch_shown: Any
    """What ``pm2_env.watch`` shows instead of the ``watch`` option (None: the option),
    set by the watch plugin while the app is not watched as its option says."""

    def pm2_env(self, *, with_env: bool = True) -> dict[str, Any]:
        """``pm2_env`` as ``pm2 jlist`` shows it: the options, paths and counters
        (``status``, ``restart_time``, ``pm_uptime``...), and the environment unless
        ``with_env=False``."""


def _managed(proc: Process) -> ManagedProcess:
    # every Process a plugin holds is the daemon's own record, behind the view
    return cast("ManagedProcess", proc)


class DaemonAPI:
    """What a plugin may read and do in the daemon that loaded it.

    One per daemon: two daemons embedded in one process hand their plugins two
    of them, and :meth:`state` keeps a plugin's objects apart per daemon. Every
    method runs on the daemon's event loop unless it says it may be called from
    any thread.
    """

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._state: dict[str, Any] = {}

    # -- where and when ----------------------------------------------------

    @property
    def home(self) -> Path:
        """``CORRAL_HOME`` of this daemon (its logs, pids and settings live under it)."""
        return self._daemon.home

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The daemon's event loop; ``loop.call_soon_threadsafe`` reaches it from a thread."""
        assert self._daemon.loop is not None, "the daemon is not running"
        return self._daemon.loop

    @property
    def log(self) -> Any:
        """The daemon's structlog logger: ``daemon.log.info("event", key=value)`` goes to
        ``corral.log`` with secrets masked."""
        return self._daemon.log

    @property
    def log_path(self) -> Path:
        """The daemon's own log file (``corral.log``)."""
        return Path(self._daemon.log_file.path)

    @property
    def started_at(self) -> int:
        """When the daemon started, in ms since the epoch."""
        return self._daemon.started_at

    @property
    def shutting_down(self) -> bool:
        """True once the daemon has begun to stop: start no new work."""
        return self._daemon.shutting_down

    # -- the processes -----------------------------------------------------

    def processes(self) -> list[Process]:
        """Every process slot, by pm_id. Read their fields; change them only through
        the methods below."""
        return cast("list[Process]", self._daemon.processes())  # a new list, the caller's

    def process(self, pm_id: int) -> Process | None:
        """The slot with ``pm_id``, or None once it is deleted."""
        return self._daemon.procs.get(pm_id)

    async def restart_process(self, proc: Process, *, reason: str) -> None:
        """Restart ``proc`` gracefully (its ``kill_signal``, then SIGKILL after
        ``kill_timeout``); a stopped app is started, and a cluster app with a shared
        socket is reloaded instead, so it keeps serving. ``reason`` goes with the
        ``restart`` event. Does nothing once the slot is deleted."""
        await _managed(proc).slot.restart_process(reason=reason)

    async def start_process(self, proc: Process, *, reason: str = "") -> bool:
        """Start ``proc`` if it is stopped or errored (an app a plugin held back, see
        ``corral_hold_launch``), as ``corral start`` of it does; a ``start`` event carries
        ``reason``. False if it was not stopped (a user started or deleted it meanwhile),
        or its spawn failed (it is ``errored`` then, and says why)."""
        # deferred: the daemon's modules, loaded here only when a plugin calls this
        from corral.errors import CorralError  # deferred: as the line above says
        from corral.supervisor import lifecycle  # deferred: as above
        from corral.supervisor.process import now_ms  # deferred: as above

        managed = _managed(proc)
        async with self._daemon.lock(managed):
            if self._daemon.procs.get(managed.pm_id) is not managed:
                return False
            if managed.state not in lifecycle.STOPPED_STATES:
                return False
            managed.history = lifecycle.on_start(managed.history, now_ms())
            try:
                managed.slot.spawn(is_restart=False)
            except CorralError:
                return False
            self._daemon.emit(managed, "start", reason=reason)
            return True

    async def stop_process(self, proc: Process, *, reason: str = "") -> None:
        """Stop ``proc`` as ``corral stop`` does (it stays in the list, stopped)."""
        if reason:
            self._daemon.log.info("stop", name=proc.name, pm_id=proc.pm_id, reason=reason)
        managed = _managed(proc)
        async with self._daemon.lock(managed):
            if self._daemon.procs.get(managed.pm_id) is managed:
                await managed.slot.stop_process(manually=False)

    async def fail_process(self, proc: Process, *, reason: str) -> bool:
        """End ``proc``'s running child as a crash (its ``kill_signal``, SIGKILL after
        ``kill_timeout``): its restart policy then decides (``autorestart``,
        ``restart_delay``, the backoff, ``max_restarts``), and the ``exit`` event's
        reason starts with ``reason``. False when no child was running."""
        managed = _managed(proc)
        if self._daemon.procs.get(managed.pm_id) is not managed:
            return False
        return await managed.slot.fail(reason=reason)

    def request_restart(self, pm_id: int, reason: str) -> concurrent.futures.Future:
        """:meth:`restart_process` from any thread (a watchdog observer, a timer);
        the future resolves when the restart is done."""
        return self._daemon.request_restart(pm_id, reason)

    def emit(self, proc: Process, name: str, *, reason: str = "") -> None:
        """Tell every ``corral_process_event`` observer (and the bus) that ``name``
        happened to ``proc``, e.g. ``"cron failed"``."""
        self._daemon.emit(_managed(proc), name, reason=reason)

    def show(self, proc: Process, key: str, value: Any) -> None:
        """Show ``value`` (JSON) as ``pm2_env[key]`` of ``proc`` in ``jlist``, ``describe``,
        ``list()`` and the events, until set again; None takes it away. Name the key
        after the plugin (the health plugin shows ``health_status``); a key the core has
        (an option, a field, a variable of the app's env) is refused with ValueError.
        Call on the loop. Not kept in the state file: a new daemon starts without it.
        ``value`` is encoded at each read: a dict shown may be updated in place (on the
        loop) without another call."""
        managed = _managed(proc)
        fields = dict(managed.plugin_fields or {})
        if value is None:
            fields.pop(key, None)
        else:
            if key not in fields and (key in managed.env or key in _core_fields(managed)):
                raise ValueError(f"pm2_env has a field {key!r} of its own: name yours otherwise")
            fields[key] = value
        managed.plugin_fields = fields or None  # replaced, never changed in place

    def hold_reply(self, awaitable: Any) -> bool:
        """From a hook a client command triggered: that command's reply waits for
        ``awaitable`` (at most 10 s), e.g. a watch being armed; False outside a command."""
        return self._daemon.hold_reply(awaitable)

    # -- work and state ----------------------------------------------------

    def run_off_loop(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run blocking ``fn(*args)`` on a worker thread; await the result on the loop."""
        return self.loop.run_in_executor(None, fn, *args)

    def state(self, key: str, factory: Callable[[], T]) -> T:
        """The plugin's object for this daemon under ``key``, made by ``factory`` on first
        use. Keep state here, not in module globals, so two daemons in one process each
        have their own."""
        if key not in self._state:
            self._state[key] = factory()
        return self._state[key]

    def forget_state(self, key: str) -> Any:
        """Drop (and return) the object :meth:`state` keeps under ``key``, e.g. at stop."""
        return self._state.pop(key, None)

    # -- more endpoints (the remote plugin's needs) -------------------------

    def serve_rpc(
        self, context: Any, address: str, options: dict[int, Any] | None = None
    ) -> RPCServer:
        """Bind a zmq ROUTER socket on ``address`` (in ``context``, a ``zmq.asyncio.Context``)
        that serves this daemon's RPC commands, with the zmq socket ``options`` set first
        (CURVE keys, say). Await its ``serve()`` in a task; at stop, ``await drain()`` (the
        replies in flight go out), then ``close()``. A ``zmq.ZMQError`` if it cannot bind."""
        from corral.rpc.aio import RPCServer  # zmq.asyncio: a plugin importing corral.api skips it

        daemon = self._daemon
        return RPCServer(context, address, daemon.commands.dispatch, options, log=daemon.log)

    # -- log files (the logrotate plugin's needs) --------------------------

    def app_logs(self) -> Iterator[LogFile]:
        """Every app log file the daemon writes now."""
        return iter(list(self._daemon.logs))

    def app_log(self, path: Path) -> LogFile | None:
        """The open app log file at ``path``, if the daemon writes one there."""
        return self._daemon.logs.get(path)

    def truncate_log(self, path: Path, account: Account | None = None) -> bool:
        """Empty the app log file at ``path`` with ``account``'s rights (see
        :func:`app_account`); False when there is no such file."""
        return self._daemon.logs.truncate(path, account)

    def is_own_log_dir(self, path: Path) -> bool:
        """Whether ``path`` is ``$CORRAL_HOME/logs``, whose files the daemon handles with
        its own rights (an app's other directories are handled with the app's)."""
        own = self._daemon.logs.own_dir
        return own is not None and Path(path) == own[0]

    def reopen_daemon_log(self) -> None:
        """Open ``corral.log`` again by its name, after a rotation moved it."""
        self._daemon.log_file.reopen()

    def reopen_app_logs(self) -> list[Path]:
        """Open every app log file again by its name (after an external ``mv``): the paths
        reopened. A file that cannot be reopened keeps its old descriptor, its error set."""
        return self._daemon.logs.reopen_all()

    # -- signals -----------------------------------------------------------

    def handle_signal(self, sig: int, callback: Callable[[], Any]) -> bool:
        """Call ``callback()`` on the loop each time the daemon's process gets ``sig``
        (the logrotate plugin: SIGUSR2 reopens the logs). Only a detached daemon owns its
        process's signals: an embedded one (``connect(no_daemon=True)``) leaves them to its
        host and this returns False. The last plugin to claim a signal gets it. SIGTERM,
        SIGINT, SIGQUIT, SIGHUP and SIGCHLD are the daemon's own: ValueError."""
        if sig in _DAEMON_SIGNALS:
            raise ValueError(f"{signal.Signals(sig).name} is the daemon's own signal")
        if self._daemon.in_process:
            return False
        self.loop.add_signal_handler(sig, callback)
        return True

    def release_signal(self, sig: int) -> None:
        """Undo :meth:`handle_signal` (in ``corral_daemon_stop``): from then on the daemon
        logs ``sig`` and ignores it, so it cannot kill the daemon."""
        loop = self._daemon.loop
        if self._daemon.in_process or loop is None or loop.is_closed():
            return
        loop.add_signal_handler(sig, self._daemon.unclaimed_signal, sig)

    def __repr__(self) -> str:
        return f"<DaemonAPI home={str(self.home)!r}>"


def plugin_names() -> list[str]:
    """The plugins a daemon started now would load (``CORRAL_PLUGINS``, else every
    installed one), read from the entry points' cache: nothing is imported."""
    from corral.hooks import requested_plugins  # deferred: only a command that asks
    from corral.paths import plugins_cache  # deferred: as above

    return requested_plugins(plugins_cache())


def read_portable(
    path: str | Path, *, env_name: str | None = None, manager: Any = None
) -> ConfigFile:
    """An app file read for another machine (:mod:`corral.options.portable`): its apps
    validated by the options of ``manager``'s plugins (default: this environment's),
    nothing of this machine checked, and its deploy section."""
    from corral.hooks import load_plugins  # deferred: only a command that reads a file
    from corral.options.portable import read_portable as read  # deferred: as above

    return read(path, env_name=env_name, manager=manager or load_plugins())


def _core_fields(proc: ManagedProcess) -> set[str]:
    """The keys of ``proc``'s pm2_env that are the core's: the plugins' shown keys are
    never one of them (:meth:`DaemonAPI.show` refuses those)."""
    return set(proc.pm2_env(with_env=False)) - set(proc.plugin_fields or ())


def __getattr__(name: str) -> Any:
    if name in _HELPERS:
        module, attr = _HELPERS[name]
        value = getattr(importlib.import_module(f".{module}", __package__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'corral.api' has no attribute {name!r}")
