"""The client API: ``connect()``, ``Client`` (synchronous) and ``AsyncClient``.

Both clients share one definition of every call (``_Calls``); they differ
only in how a request travels. Names follow PM2's API in snake_case.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import homelock, paths
from .command_table import with_pm2_names
from .errors import ConfigError, CorralError, DaemonError, NotFoundError, PluginError, ProtocolError
from .errors import CorralWarning as CorralWarning  # defined with the errors, below every module
from .info import ProcessInfo
from .launcher import ADDRESS_ENV_NAME, ensure_daemon, read_daemon_pid, wait_daemon_gone
from .rpc import SyncTransport, pid_alive

# who serves tcp:// addresses, for the error when no plugin does
NO_TRANSPORT = (
    "reaching {address} needs the plugin 'remote' (TCP with CURVE), which is not loaded: "
    "install corral with its plugins, or add remote to CORRAL_PLUGINS"
)

if TYPE_CHECKING:
    from .reconcile import Reconciled
    from .verdict import StartVerdict

Target = str | int | list
Progress = Callable[[dict[str, Any]], None]  # corral.actions' events


class Remote(Protocol):
    """A daemon elsewhere, as a ``corral_client_transport`` plugin describes it."""

    address: str  # the zmq endpoint the client connects to

    def socket_options(self) -> dict[int, Any]: ...

    def no_answer(self, timeout: float) -> CorralError: ...


def _infos(result: Any) -> list[ProcessInfo]:
    return [ProcessInfo(item) for item in result]


def _resurrected(result: Any) -> list[ProcessInfo]:
    """resurrect's reply: ``{"processes", "warnings"}`` (a list from an older daemon)."""
    if isinstance(result, list):
        return _infos(result)
    # deferred: corral.actions, off connect()+list()'s import path
    from .actions import Applied, summarize

    for message in result.get("warnings", ()):
        warnings.warn(message, CorralWarning, stacklevel=4)  # the caller of resurrect()
    infos = _infos(result["processes"])
    return Applied(infos, summarize("resurrect", infos, result.get("actions")))


def _started(result: dict[str, Any]) -> list[ProcessInfo]:
    """start's reply: its processes, with ``actions`` (corral.actions.Applied)."""
    # deferred: corral.actions, off connect()+list()'s import path
    from .actions import Applied, from_steps, summarize

    for message in result.get("warnings", ()):
        warnings.warn(message, CorralWarning, stacklevel=4)
    infos = _infos(result["processes"])
    if "plan" in result:  # a config file's reconcile: its steps say it
        return Applied(infos, from_steps(result["plan"], infos))
    return Applied(infos, summarize("start", infos, result.get("actions")))


def _restarted(infos: list[ProcessInfo]) -> list[ProcessInfo]:
    """A start by name or id: the app was restarted, as PM2's start of a known app."""
    # deferred: corral.actions, off connect()+list()'s import path
    from .actions import Applied, summarize

    return Applied(infos, summarize("restart", infos))


def _target(target: Any, remote: bool = False) -> Any:
    """``target`` as the daemon matches it: paths and config files resolved here, in the
    caller's cwd (see corral.targets)."""
    from .targets import resolve  # deferred: corral.targets, off connect()+list()'s import path

    return resolve(target, remote=remote)


def _change(
    target: Any, update_env: bool, options: dict[str, Any] | None, remote: bool = False
) -> dict[str, Any]:
    """The arguments restart and reload share: the target, the caller's env, new options."""
    args: dict[str, Any] = {"target": _target(target, remote), "update_env": update_env}
    if update_env:
        args["env"] = dict(os.environ)
    if options:
        args["options"] = options
    return args


def start_request(
    target: Any, options: dict[str, Any] | str | os.PathLike | None, env_name: str | None
) -> dict[str, Any] | None:
    """The ``start`` request for a script, a config file, an options dict or a list of them.

    Returns None when ``target`` may be the name or pm_id of an existing app.
    """
    # deferred: the config loader, only for a config target
    from .config import is_config_file, load_config

    extra: dict[str, Any] = {}
    if isinstance(options, (str, os.PathLike)):
        loaded = load_config(options)
        extra = dict(loaded[0]) if loaded else {}
    elif options:
        extra = dict(options)
    from_config = False
    config_file = None
    if isinstance(target, dict):
        apps = [{**target, **extra}]
    elif isinstance(target, (list, tuple)):
        apps = [{**dict(app), **extra} for app in target]
    elif isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if is_config_file(text):
            apps = [{**app, **extra} for app in load_config(text)]
            from_config = True
            config_file = os.path.abspath(text)
        elif _looks_like_script(text):
            apps = [{"script": text, **extra}]
        else:
            return None
    elif isinstance(target, int):
        return None
    else:
        raise CorralError(
            f"start needs a script, a config file or options, got {type(target).__name__}"
        )
    request = {
        "apps": apps,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "env_name": env_name,
        "from_config": from_config,
    }
    if config_file is not None:
        request["config_file"] = config_file
    return request


def _renames(target: Any, options: Any) -> bool:
    """Whether a start of the bare word ``target`` gives it another name (``start npm
    --name web``): then it is a command to start, never the app called ``target``."""
    if not isinstance(target, str) or not isinstance(options, dict):
        return False
    name = options.get("name")
    return isinstance(name, str) and bool(name) and name != target


def reconcile_request(
    target: Any,
    options: dict[str, Any] | str | os.PathLike | None,
    *,
    env_name: str | None,
    action: str,
    prune: bool = False,
    dry_run: bool = False,
    only: list[str] | None = None,
) -> dict[str, Any]:
    """The ``start`` request that brings a config file's apps (or a list of app dicts)
    in line with it (corral.reconcile); with ``only``, just the apps it names, and
    the file's other apps are left alone (``prune`` too leaves them)."""
    # deferred: corral.targets, off connect()+list()'s import path
    from .targets import is_config_target, pick_apps

    if is_config_target(target):
        config_file: str | None = os.path.abspath(os.fspath(target))
    elif isinstance(target, (dict, list, tuple)):
        config_file = None
    elif _missing_config(target):
        raise NotFoundError(
            f"config file {os.fspath(target)!r} not found in {os.getcwd()}: check its path"
        )
    else:
        raise CorralError(
            f"{action.replace('_', ' ')} of {target!r} needs a config file "
            "(ecosystem.config.js, *.json, *.yaml, *.toml) or a list of apps: "
            "restart an app by name with restart()"
        )
    request = start_request(target, options, env_name)
    assert request is not None
    request.update(
        from_config=True, action=action, config_file=config_file, prune=prune, dry_run=dry_run
    )
    if only:
        source = os.fspath(target) if config_file else "the config"
        request.update(apps=pick_apps(request["apps"], only, source), only=True)
    return request


def _reconciled(result: dict[str, Any]) -> Any:
    from .reconcile import Reconciled  # deferred: corral.reconcile, only for a config's start

    return Reconciled(
        result.get("plan", []),
        result.get("lines", []),
        _started(result),
        bool(result.get("dry_run")),
    )


def _missing_config(target: Any) -> bool:
    """Whether ``target`` names a config file (by its suffix) that is not there."""
    from .config import CONFIG_SUFFIXES  # deferred: the config loader, only for a config target

    if not isinstance(target, (str, os.PathLike)):
        return False
    path = os.fspath(target)
    return Path(path).suffix.lower() in CONFIG_SUFFIXES and not os.path.exists(path)


def _is_file(target: Any) -> bool:
    # deferred: corral.targets, off connect()+list()'s import path
    from .targets import is_config_target

    return is_config_target(target)


def _new_options(options: Any) -> dict[str, Any] | None:
    """The options a start of an existing app restarts it with (PM2 applies them too)."""
    return dict(options) if isinstance(options, dict) and options else None


def _looks_like_script(text: str) -> bool:
    return os.path.exists(text) or "/" in text or " " in text or "." in Path(text).name


class _Calls:
    """Every client call, written once; ``_send`` returns a value or an awaitable."""

    remote: Remote | None = None  # set for a daemon reached over TCP
    plugin_names: list[Any] | None = None  # connect(plugins=...): this process's plugins too
    _manager: Any = None  # those plugins, loaded by the first call that needs them

    def local_plugins(self) -> Any:
        """This process's plugin manager (the plugins given to ``connect()``, else
        ``CORRAL_PLUGINS`` or every installed one), loaded on first use only, so a client
        that never needs a client-side plugin (bus, startup) never scans entry points."""
        if self._manager is None:
            from .hooks import load_plugins  # deferred: entry points cost ~25 ms to scan

            self._manager = load_plugins(self.plugin_names)
        return self._manager

    def _local_only(self, what: str) -> None:
        if self.remote is not None:
            raise DaemonError(
                f"{what} works on the daemon's machine only; this client drives "
                f"{self.remote.address} over TCP"
            )

    def _send(self, cmd: str, args: dict[str, Any], convert: Callable | None = None) -> Any:
        raise NotImplementedError

    def ping(self) -> dict[str, Any]:
        return self._send("ping", {})

    @property
    def _remote(self) -> bool:
        return self.remote is not None

    def stop(self, target: Target) -> list[ProcessInfo]:
        """Stop processes: ``all``, a name, a pm_id, a namespace, a script path (relative to
        this process's cwd) or a config file (its apps), or a list of them."""
        return self._send("stop", {"target": _target(target, self._remote)}, _infos)

    def restart(
        self,
        target: Target,
        *,
        update_env: bool = False,
        options: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> list[ProcessInfo]:
        """Stop and start again; with ``wait_ready``, returns once each new instance is
        ready or ``listen_timeout`` has passed (as ``start``). A config file's apps are
        brought in line with it, as :meth:`start_or_restart` does (PM2's
        ``restart ecosystem.json``). ``progress``: called with an event per instance
        as it gets ready (see corral.actions)."""
        if _is_file(target):
            request = self._reconcile(target, options, "restart")
            return self._watched(
                progress, "restart", lambda: self._send("start", request, _started), request
            )
        args = _change(target, update_env, options, self._remote)
        return self._watched(
            progress, "restart", lambda: self._send("restart", args, _infos), target=target
        )

    def start_or_restart(
        self,
        target: Any,
        options: dict[str, Any] | None = None,
        *,
        env_name: str | None = None,
        prune: bool = False,
        dry_run: bool = False,
        only: list[str] | None = None,
        progress: Progress | None = None,
    ) -> Reconciled:
        """Bring a config file's apps in line with it (PM2's ``startOrRestart``): new apps
        start, changed ones are restarted with the file's options (a new script replaces
        the app, new ``instances`` rescale it), unchanged ones are restarted. ``prune``
        deletes the apps this file started that it no longer lists; ``dry_run`` only plans.
        The result's ``lines`` say what happened to each app (see corral.reconcile)."""
        return self._start_or("restart", target, options, env_name, prune, dry_run, only, progress)

    def start_or_reload(
        self,
        target: Any,
        options: dict[str, Any] | None = None,
        *,
        env_name: str | None = None,
        prune: bool = False,
        dry_run: bool = False,
        only: list[str] | None = None,
        progress: Progress | None = None,
    ) -> Reconciled:
        """:meth:`start_or_restart`, reloading the apps the file keeps (``startOrReload``)."""
        return self._start_or("reload", target, options, env_name, prune, dry_run, only, progress)

    def start_or_graceful_reload(
        self,
        target: Any,
        options: dict[str, Any] | None = None,
        *,
        env_name: str | None = None,
        prune: bool = False,
        dry_run: bool = False,
        only: list[str] | None = None,
        progress: Progress | None = None,
    ) -> Reconciled:
        """:meth:`start_or_reload` with graceful reloads (``startOrGracefulReload``)."""
        return self._start_or(
            "graceful_reload", target, options, env_name, prune, dry_run, only, progress
        )

    def _start_or(
        self,
        action: str,
        target: Any,
        options: dict[str, Any] | None,
        env_name: str | None,
        prune: bool,
        dry_run: bool,
        only: list[str] | None,
        progress: Progress | None,
    ) -> Reconciled:
        """The start_or_* methods: one reconcile request, its progress watched (not for a
        dry run, which starts nothing)."""
        request = self._reconcile(target, options, action, env_name, prune, dry_run, only)
        send = lambda: self._send("start", request, _reconciled)  # noqa: E731
        return self._watched(None if dry_run else progress, "start", send, request)

    def _reconcile(
        self,
        target: Any,
        options: dict[str, Any] | None,
        action: str,
        env_name: str | None = None,
        prune: bool = False,
        dry_run: bool = False,
        only: list[str] | None = None,
    ) -> dict[str, Any]:
        return reconcile_request(
            target,
            options,
            env_name=env_name,
            action=action,
            prune=prune,
            dry_run=dry_run,
            only=only,
        )

    def reload(
        self,
        target: Target,
        *,
        update_env: bool = False,
        parallel: int = 1,
        options: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> list[ProcessInfo]:
        """Zero-downtime rolling reload (cluster mode or a shared ``listen`` socket);
        other apps are restarted, as PM2 does in fork mode. ``options`` changes the
        app for the new instances (a new version). Raises StateError, with the old
        instances and options still serving, if a new instance fails to become ready
        (exits; with ``wait_ready``, is not ready within ``listen_timeout``, unless the
        app has ``on_listen_timeout: continue``). A fork-mode reload waits for
        ``wait_ready`` as ``restart`` does. ``progress``: as :meth:`restart`'s."""
        return self._reload(target, update_env, parallel, options, False, progress)

    def graceful_reload(
        self,
        target: Target,
        *,
        update_env: bool = False,
        parallel: int = 1,
        options: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> list[ProcessInfo]:
        """``reload``, but each old instance first gets the ``"shutdown"`` message,
        then SIGINT after ``kill_timeout``."""
        return self._reload(target, update_env, parallel, options, True, progress)

    def _reload(
        self,
        target: Target,
        update_env: bool,
        parallel: int,
        options: dict[str, Any] | None,
        graceful: bool,
        progress: Progress | None = None,
    ) -> Any:
        action = "graceful_reload" if graceful else "reload"
        if _is_file(target):
            request = self._reconcile(target, options, action)
            return self._watched(
                progress, action, lambda: self._send("start", request, _started), request
            )
        args = _change(target, update_env, options, self._remote)
        args.update(parallel=parallel, graceful=graceful)
        return self._watched(
            progress, action, lambda: self._send("reload", args, _infos), target=target
        )

    def scale(
        self, name: str, count: int | str, *, progress: Progress | None = None
    ) -> list[ProcessInfo]:
        """Run ``count`` instances of ``name``; ``"+2"`` / ``"-1"`` change the count.
        ``progress``: as :meth:`restart`'s, for the instances it adds."""
        send = lambda: self._send("scale", {"name": name, "count": count}, _infos)  # noqa: E731
        return self._watched(progress, "scale", send, target=name, count=count)

    def _watched(
        self,
        progress: Progress | None,
        verb: str,
        send: Callable[[], Any],
        request: dict[str, Any] | None = None,
        *,
        target: Any = None,
        count: int | str | None = None,
    ) -> Any:
        """``send()``, its progress given to ``progress`` (a Client only: an AsyncClient
        subscribes to launch_bus() for the same)."""
        if progress is None:
            return send()
        if not isinstance(self, Client):
            raise CorralError("progress= is a Client's; an AsyncClient reads launch_bus()")
        from . import actions  # deferred: corral.actions, off connect()+list()'s import path

        scope = actions.scope(self, verb, request=request, target=target, count=count)
        return actions.watch(self, verb, progress, send, **scope)

    def send_data_to_process_id(self, pm_id: int, packet: dict[str, Any]) -> dict[str, Any]:
        """PM2's packet (``topic``, ``data``, ...) to one process's channel."""
        return self._send("send_data_to_process_id", {"pm_id": pm_id, "packet": packet})

    def send_line(self, pm_id: int, line: str) -> dict[str, Any]:
        """``line`` and a newline to the stdin of process ``pm_id`` (PM2's sendLineToStdin);
        StateError if it is not running, has closed its stdin or leaves 1 MiB unread."""
        return self._send("send_line", {"pm_id": pm_id, "line": line})

    send_line_to_stdin = send_line  # PM2's sendLineToStdin, in snake_case

    def delete(self, target: Target) -> list[ProcessInfo]:
        return self._send("delete", {"target": _target(target, self._remote)}, _infos)

    def list(self) -> list[ProcessInfo]:
        return self._send("list", {}, _infos)

    def describe(self, target: Target) -> list[ProcessInfo]:
        return self._send("describe", {"target": _target(target, self._remote)}, _infos)

    def dump(self, *, force: bool = False) -> dict[str, Any]:
        return self._send("dump", {"force": force})

    def resurrect(self) -> list[ProcessInfo]:
        """Start the apps saved by :meth:`dump`. If the dump does not read and its
        ``.bak`` is used, a :class:`CorralWarning` says so (the broken file is moved
        to ``<dump>.broken-<time>``)."""
        return self._send("resurrect", {}, _resurrected)

    def flush(self, target: Target | None = None) -> list[str]:
        return self._send("flush", {"target": _target(target, self._remote)})

    def reset(self, target: Target) -> list[ProcessInfo]:
        """Zero the restart counters of ``target`` (PM2's ``reset``)."""
        return self._send("reset", {"target": _target(target, self._remote)}, _infos)

    def send_signal_to_process_name(self, signal: str | int, target: Target) -> list[ProcessInfo]:
        return self._send(
            "send_signal_to_process_name",
            {"signal": signal, "target": _target(target, self._remote)},
            _infos,
        )

    def send_signal_to_process_id(self, pm_id: int, signal: str | int) -> list[ProcessInfo]:
        return self._send("send_signal_to_process_id", {"pm_id": pm_id, "signal": signal}, _infos)

    def plugins(self) -> list[dict[str, Any]]:
        return self._send("plugins", {})

    def options(self) -> list[dict[str, Any]]:
        return self._send("options", {})

    def call(self, cmd: str, **args: Any) -> Any:
        """A plugin's RPC command by name."""
        return self._send(cmd, args)


@with_pm2_names
class Client(_Calls):
    """A synchronous client; safe to use from several threads at once.

    ``remote`` (from ``connect(address=...)``): the daemon of another machine,
    over TCP; ``home`` and ``daemon_pid`` are then None.
    """

    def __init__(
        self,
        home: Path | None,
        daemon_pid: int | None,
        inner: _InProcess | None = None,
        *,
        remote: Remote | None = None,
    ) -> None:
        self.home = home
        self.daemon_pid = daemon_pid
        self._inner = inner
        self.remote = remote
        # in-process, our own pid is always alive: the daemon's thread tells
        alive = inner.thread.is_alive if inner else lambda: pid_alive(self.daemon_pid)
        self._transport = SyncTransport(*_endpoint(home, remote, alive))

    def _send(self, cmd: str, args: dict[str, Any], convert: Callable | None = None) -> Any:
        result = self._transport.call(cmd, args)
        return convert(result) if convert else result

    def start(
        self,
        target: Any,
        options: dict[str, Any] | str | os.PathLike | None = None,
        *,
        env_name: str | None = None,
        wait: bool = False,
        progress: Progress | None = None,
    ) -> list[ProcessInfo]:
        """Start a script, a config file's apps, an options dict, or restart an app by name/id.

        Returns once the instances are spawned (with ``wait_ready``: ready, or
        ``listen_timeout`` passed), as PM2's start does: an instance that dies at
        once is not told. ``wait=True`` then watches them for ``min_uptime`` (see
        :meth:`wait_started`), returns them as they are then, and raises
        :class:`corral.verdict.StartFailed` (a StateError) naming each exited
        instance, its last error line and the fix, when no instance of an app
        stayed up. ``progress``: called with an event per instance as it gets ready
        (see corral.actions).
        """
        request = start_request(target, options, env_name)
        if request is None and _renames(target, options):
            request = start_request({"script": target}, options, env_name)
        if request is None:
            try:
                self.describe(target)
            except NotFoundError:
                request = start_request({"script": os.fspath(target)}, options, env_name)
            else:
                infos = self.restart(target, options=_new_options(options), progress=progress)
                return self._waited(_restarted(infos), wait)
        assert request is not None
        send = lambda: _started(self._transport.call("start", request))  # noqa: E731
        return self._waited(self._watched(progress, "start", send, request), wait)

    def wait_started(self, infos: list[ProcessInfo], timeout: float | None = None) -> StartVerdict:
        """Watch the instances ``start()`` returned until each has been up its app's
        ``min_uptime`` (1 s by default), or ``timeout`` seconds; early once all exited.

        The :class:`corral.verdict.StartVerdict` names each instance that exited
        meanwhile (``exited``: status, restarts, the telling line of its error log,
        the fix; ``EADDRINUSE`` gets cluster mode, ``listen`` or ``port``), the apps
        none of whose instances stayed up (``down``), and ``ok`` when there are none.
        ``corral start`` prints it and exits 1 unless ``ok``.
        """
        from .verdict import wait_started  # deferred: corral.verdict, only when start waits

        return wait_started(self, infos, timeout)

    def _waited(self, infos: list[ProcessInfo], wait: bool) -> list[ProcessInfo]:
        if not wait:
            return infos
        from .verdict import StartFailed  # deferred: corral.verdict, only when start waits

        return StartFailed.check(self.wait_started(infos))

    def launch_bus(self, topics: list[str] | None = None) -> Any:
        """A subscriber to the daemon's events (``process:event``, ``log:out``, ...).

        Needs the ``bus`` plugin, in the daemon and here (it answers
        ``corral_bus_subscriber``). ``topics`` narrows what arrives (``"process:*"``
        style wildcards); iterate it, or ``bus.on(topic, fn)``.
        """
        self._local_only("launch_bus")  # the bus is a unix socket
        try:
            reply = self._send("bus_address", {})
        except ProtocolError as exc:
            raise PluginError(NO_BUS) from exc
        return _subscriber(self, reply["address"], topics)

    def reload_logs(self) -> list[str]:
        """Reopen every app log and corral.log by its name, after an external ``mv``;
        returns the app logs reopened (PM2's ``reloadLogs``). Needs the ``logrotate``
        plugin in the daemon: :class:`PluginError` naming it otherwise."""
        try:
            return self._send("reload_logs", {})
        except ProtocolError as exc:
            raise needs_plugin("reload_logs", "logrotate", exc) from exc

    def startup(self, platform: str | None = None, **kw: Any) -> Any:
        """Install the boot script that runs ``corral resurrect`` at boot (``pm2.startup``).

        Needs the ``startup`` plugin (in this process: the plugins given to
        ``connect()``, else ``CORRAL_PLUGINS`` or every installed one).
        ``platform`` is PM2's name (``ubuntu``, ``centos``, ``darwin``, ...) or an
        init system (``systemd``, ``launchd``, ``openrc``, ``upstart``, ``systemv``,
        ``rcd``); None detects it. The file is generated here, in the calling
        process; this client's daemon is only asked to dump its list. Not root,
        the result's ``todo`` is the command to run as root. Keywords: ``user``,
        ``hp``, ``service_name``, ``user_mode``, ``print_only`` (see
        :func:`corral.plugins.startup.startup`). Returns a
        :class:`corral.plugins.startup.StartupResult`.
        """
        self._local_only("startup")
        plugin, kw["manager"] = self._startup_plugin(kw.get("manager"))
        return plugin.startup(platform, client=self, **kw)

    def unstartup(self, platform: str | None = None, **kw: Any) -> Any:
        """Disable the boot script and delete it (the keywords of :meth:`startup`)."""
        plugin, kw["manager"] = self._startup_plugin(kw.get("manager"))
        return plugin.unstartup(platform, **kw)

    def _startup_plugin(self, manager: Any) -> tuple[Any, Any]:
        """The ``startup`` plugin, reached through the plugin manager (the core never
        imports a plugin), and that manager; PluginError when it is not loaded."""
        if manager is None:
            manager = self.local_plugins()
        plugin = manager.pm.get_plugin(STARTUP_PLUGIN) or manager.pm.get_plugin(
            f"corral.plugins.{STARTUP_PLUGIN}"  # registered as a module object
        )
        if plugin is None:
            raise PluginError(NO_STARTUP)
        return plugin, manager

    def jlist_json(self) -> bytes:
        """Every process as ``pm2 jlist`` prints it: a JSON array, as the daemon encoded it."""
        return self._transport.call_raw("list")

    def kill_daemon(self) -> None:
        """Stop every app and the daemon; waits until the daemon has exited (a
        DaemonError says so if it still runs 15 s after it answered)."""
        reply = self._transport.call("kill_daemon", {})
        if self._inner is not None:
            self._inner.join()
            self._inner = None
        elif self.remote is None:  # a daemon over TCP has a pid of another machine
            wait_daemon_gone(reply.get("pid") or self.daemon_pid)
        self._transport.close()

    def update(self) -> dict[str, Any]:
        """Bring the daemon to the corral this program runs (PM2's ``pm2 update``), every
        app back under its pm_id with its counts and logs; the reply says, per app,
        whether it kept running or was restarted (see :mod:`corral.upgrade`)."""
        self._local_only("update")
        from .updater import update_daemon  # deferred: the updater, only update runs it

        return update_daemon(self)

    def disconnect(self) -> None:
        """Close the connection; an in-process daemon stops with its apps."""
        if self._inner is not None and self._inner.thread.is_alive():
            with contextlib.suppress(DaemonError):  # another client stopped it meanwhile
                self.kill_daemon()
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()


@with_pm2_names
class AsyncClient(_Calls):
    """The asyncio twin of :class:`Client`: the same calls, awaited.

    ``await AsyncClient.connect()`` links to (or starts) the daemon.
    """

    def __init__(
        self, home: Path | None, daemon_pid: int | None, *, remote: Remote | None = None
    ) -> None:
        self.home = home
        self.daemon_pid = daemon_pid
        self.remote = remote
        # deferred: zmq.asyncio (~10 ms), only the AsyncClient needs it
        from .rpc_async import AsyncTransport

        endpoint = _endpoint(home, remote, lambda: pid_alive(self.daemon_pid))
        self._transport = AsyncTransport(*endpoint)

    @classmethod
    async def connect(
        cls,
        home: str | os.PathLike | None = None,
        *,
        plugins: list[str] | None = None,
        address: str | None = None,
        server_key: str | bytes | os.PathLike | None = None,
        client_key: str | os.PathLike | None = None,
        timeout: float = 5.0,
    ) -> AsyncClient:
        """The asyncio twin of :func:`connect` (``no_daemon`` aside)."""
        import asyncio

        target = _remote_target(home, False, address, server_key, client_key, plugins)
        if target is not None:
            if await asyncio.to_thread(_ping, target, timeout) is None:
                raise target.no_answer(timeout)
            return cls(None, None, remote=target)
        root = paths.ensure_home(Path(home) if home else None)
        pid = await asyncio.to_thread(ensure_daemon, root, plugins)
        client = cls(root, pid)
        client.plugin_names = plugins
        return client

    async def _send(self, cmd: str, args: dict[str, Any], convert: Callable | None = None) -> Any:
        result = await self._transport.call(cmd, args)
        return convert(result) if convert else result

    async def start(
        self,
        target: Any,
        options: dict[str, Any] | str | os.PathLike | None = None,
        *,
        env_name: str | None = None,
        wait: bool = False,
    ) -> list[ProcessInfo]:
        """:meth:`Client.start`, awaited (``wait=True`` too)."""
        request = start_request(target, options, env_name)
        if request is None and _renames(target, options):
            request = start_request({"script": target}, options, env_name)
        if request is None:
            try:
                await self.describe(target)
            except NotFoundError:
                request = start_request({"script": os.fspath(target)}, options, env_name)
            else:
                return await self._waited(
                    await self.restart(target, options=_new_options(options)), wait
                )
        assert request is not None
        return await self._waited(_started(await self._transport.call("start", request)), wait)

    async def wait_started(
        self, infos: list[ProcessInfo], timeout: float | None = None
    ) -> StartVerdict:
        """:meth:`Client.wait_started`, awaited."""
        from .verdict import wait_started_async  # deferred: corral.verdict, only when start waits

        return await wait_started_async(self, infos, timeout)

    async def _waited(self, infos: list[ProcessInfo], wait: bool) -> list[ProcessInfo]:
        if not wait:
            return infos
        from .verdict import StartFailed  # deferred: corral.verdict, only when start waits

        return StartFailed.check(await self.wait_started(infos))

    async def launch_bus(self, topics: list[str] | None = None) -> Any:
        """The asyncio twin of :meth:`Client.launch_bus`; iterate it with ``async for``."""
        self._local_only("launch_bus")
        try:
            reply = await self._transport.call("bus_address", {})
        except ProtocolError as exc:
            raise PluginError(NO_BUS) from exc
        return _subscriber(self, reply["address"], topics)

    async def reload_logs(self) -> list[str]:
        """The asyncio twin of :meth:`Client.reload_logs`."""
        try:
            return await self._send("reload_logs", {})
        except ProtocolError as exc:
            raise needs_plugin("reload_logs", "logrotate", exc) from exc

    async def kill_daemon(self) -> None:
        import asyncio

        reply = await self._transport.call("kill_daemon", {})
        if self.remote is None:
            await asyncio.to_thread(wait_daemon_gone, reply.get("pid") or self.daemon_pid)
        await self._transport.close()

    async def disconnect(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()


STARTUP_PLUGIN = "startup"
NO_STARTUP = (
    f"startup/unstartup need the plugin '{STARTUP_PLUGIN}', which is not loaded: "
    "install it, or add it to CORRAL_PLUGINS / connect(plugins=[...])"
)


def needs_plugin(call: str, plugin: str, exc: ProtocolError) -> CorralError:
    """What a client call answered ``unknown command`` raises: PluginError naming the
    plugin that serves it (any other protocol error is returned as it is)."""
    if not str(exc).startswith("unknown command"):
        return exc
    return PluginError(
        f"{call} needs the plugin '{plugin}', which is not loaded in the daemon: "
        "install it, or add it to CORRAL_PLUGINS / connect(plugins=[...])"
    )


NO_BUS = (
    "launch_bus needs the plugin 'bus', which is not loaded in the daemon: "
    "install it, or add it to CORRAL_PLUGINS / connect(plugins=[...])"
)
NO_SUBSCRIBER = (
    "launch_bus needs the plugin 'bus', which is not loaded in this process: "
    "install it, or add it to CORRAL_PLUGINS / connect(plugins=[...])"
)


def _subscriber(client: _Calls, address: str, topics: list[str] | None) -> Any:
    """The subscriber a plugin opens at ``address`` (``corral_bus_subscriber``); this
    process's plugins load on the first call only, so a client that never subscribes
    never imports them."""
    bus = client.local_plugins().pm.hook.corral_bus_subscriber(address=address, topics=topics)
    if bus is None:
        raise PluginError(NO_SUBSCRIBER)
    return bus


# -- finding or starting the daemon -----------------------------------------


def running_client(home: Path) -> Client | None:
    """A client of the daemon serving ``home`` if one runs there and ``home`` is the
    caller's; None otherwise. Never starts a daemon (``corral.api.running_client``)."""
    try:
        if home.stat().st_uid != os.geteuid():
            return None
    except OSError:
        return None
    pid = read_daemon_pid(home)
    if not pid_alive(pid) or not paths.rpc_path(home).exists():
        return None
    return Client(home, pid)


# -- the in-process daemon --------------------------------------------------


class _InProcess:
    """A daemon on a thread of the calling process (``connect(no_daemon=True)``)."""

    def __init__(self, root: Path, plugins: list[Any] | None) -> None:
        from .daemon import Daemon  # deferred: the whole daemon, only for one in this process

        self.daemon = Daemon(root, plugins, in_process=True)
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="corral-daemon", daemon=True)
        self.thread.start()
        self.ready.wait(30)
        if self.error is not None:
            raise DaemonError(f"the in-process daemon failed to start: {self.error}")
        atexit.register(self.stop)

    def _run(self) -> None:
        import asyncio

        try:
            asyncio.run(self.daemon.run(self.ready))
        except BaseException as exc:
            self.error = exc
            self.ready.set()
        finally:
            homelock.release(self.daemon.home)  # a run() that failed at its start, too

    def stop(self) -> None:
        if self.thread.is_alive() and self.daemon.loop is not None:
            self.daemon.loop.call_soon_threadsafe(self.daemon.request_stop)
            self.thread.join(60)

    def join(self) -> None:
        self.thread.join(60)
        atexit.unregister(self.stop)


_current: list[Client] = []


def connect(
    home: str | os.PathLike | None = None,
    *,
    no_daemon: bool = False,
    plugins: list[Any] | None = None,
    address: str | None = None,
    server_key: str | bytes | os.PathLike | None = None,
    client_key: str | os.PathLike | None = None,
    timeout: float = 5.0,
) -> Client:
    """Link to the daemon in ``home`` (``$CORRAL_HOME``), starting one if none answers.

    ``no_daemon=True`` runs the daemon inside this process instead: the apps it
    starts stop when the client disconnects or the program exits. ``plugins``
    picks the plugin set by name (objects too, in-process).

    ``address="tcp://HOST:PORT"`` (or ``CORRAL_ADDRESS``) drives a daemon that
    serves ``rpc_address`` there, over CURVE: ``server_key`` is its
    ``keys/server.key`` (a path or the 40-character key), ``client_key`` a
    ``.key_secret`` file it authorised (or ``CORRAL_SERVER_KEY``,
    ``CORRAL_CLIENT_KEY``; by default the files of the local home). It never
    starts a daemon, and raises DaemonError if none answers within ``timeout``
    seconds. A plugin serves the address (``corral_client_transport``): ``tcp://``
    is the ``remote`` plugin's (:mod:`corral.plugins.remote`); without it, PluginError.
    """
    target = _remote_target(home, no_daemon, address, server_key, client_key, plugins)
    if target is not None:
        if _ping(target, timeout) is None:
            raise target.no_answer(timeout)
        client = Client(None, None, remote=target)
        _current[:] = [client]
        return client
    root = paths.ensure_home(Path(home).expanduser().absolute() if home else None)
    if no_daemon:
        if homelock.holder(root) is not None:
            raise DaemonError(
                f"a daemon already serves {root}: use connect() to drive it, "
                "or set CORRAL_HOME to another directory for an in-process daemon"
            )
        inner = _InProcess(root, plugins)
        client = Client(root, os.getpid(), inner)
    else:
        client = Client(root, ensure_daemon(root, plugins))
    client.plugin_names = plugins
    _current[:] = [client]
    return client


def _endpoint(
    home: Path | None, remote: Remote | None, alive: Callable[[], bool]
) -> tuple[str, Callable[[], bool], dict[int, Any]]:
    """A transport's address, daemon check and socket options: the remote daemon over
    CURVE (its check pings, only after a call has waited a while), or the home's socket."""
    if remote is not None:
        return remote.address, _RemoteAlive(remote), remote.socket_options()
    assert home is not None
    return paths.rpc_address(home), alive, {}


def _remote_target(
    home: Any,
    no_daemon: bool,
    address: Any,
    server_key: Any,
    client_key: Any,
    plugins: list[Any] | None = None,
) -> Remote | None:
    """The daemon elsewhere to drive, if any; an explicit home or no_daemon beats
    CORRAL_ADDRESS. A plugin (``corral_client_transport``) tells how to reach it."""
    if address is not None and no_daemon:
        raise CorralError("address= drives a daemon that runs elsewhere: drop no_daemon=True")
    explicit_local = address is None and (home is not None or no_daemon)
    if address is None and not explicit_local:
        address = os.environ.get(ADDRESS_ENV_NAME) or None
    if address is None:
        if server_key is not None or client_key is not None:
            raise ConfigError("server_key and client_key need address='tcp://HOST:PORT'")
        return None  # the common case: a local daemon, and no plugin is loaded here
    # deferred: the entry points (~25 ms to scan), only for a daemon elsewhere
    from .hooks import load_plugins

    names = plugins if plugins is None or all(isinstance(p, str) for p in plugins) else None
    found = load_plugins(names).call_checked(  # firstresult: one transport or None
        "corral_client_transport", address=address, server_key=server_key, client_key=client_key
    )
    if found is None:
        raise PluginError(NO_TRANSPORT.format(address=address))
    return found


def _ping(remote: Remote, timeout: float) -> dict[str, Any] | None:
    """The daemon's ping reply over a fresh connection, or None if none comes in time."""
    transport = SyncTransport(remote.address, lambda: True, remote.socket_options())
    try:
        return transport.call("ping", {}, timeout=timeout)
    except DaemonError:
        return None
    finally:
        transport.close()


class _RemoteAlive:
    """``daemon_alive`` for a daemon elsewhere: a ping on a fresh connection, now and then.

    The transport asks while it waits for a slow reply; a daemon that answered
    within ``every`` seconds is taken to be alive without asking again.
    """

    def __init__(self, remote: Remote, every: float = 5.0, timeout: float = 3.0) -> None:
        self.remote = remote
        self.every = every
        self.timeout = timeout
        self._confirmed = time.monotonic()

    def __call__(self) -> bool:
        if time.monotonic() - self._confirmed < self.every:
            return True
        if _ping(self.remote, self.timeout) is None:
            return False
        self._confirmed = time.monotonic()
        return True


def current() -> Client:
    """The client of the last ``connect()`` (PM2's singleton)."""
    if not _current:
        raise DaemonError("not connected: call corral.connect() first")
    return _current[0]
