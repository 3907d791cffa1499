"""Every client call, written once for both clients (``Calls``), and the errors of the
calls a plugin serves.

``Client`` and ``AsyncClient`` differ only in how a request travels: their ``_send``
returns a value or an awaitable."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from corral.client.info import ProcessInfo
from corral.client.remote import Remote
from corral.client.requests import (
    _change,
    _infos,
    _is_file,
    _reconciled,
    _resurrected,
    _started,
    _target,
    reconcile_request,
)
from corral.errors import CorralError, DaemonError, PluginError, ProtocolError

if TYPE_CHECKING:
    from corral.daemon.commands.reconcile import Reconciled


Target = str | int | list
Progress = Callable[[dict[str, Any]], None]  # corral.client.actions' events


class Calls:
    """Every client call, written once; ``_send`` returns a value or an awaitable."""

    remote: Remote | None = None  # set for a daemon reached over TCP
    plugin_names: list[Any] | None = None  # connect(plugins=...): this process's plugins too
    _manager: Any = None  # those plugins, loaded by the first call that needs them
    _watches_progress = False  # progress= works (a Client's; see _watched)

    def local_plugins(self) -> Any:
        """This process's plugin manager (the plugins given to ``connect()``, else
        ``CORRAL_PLUGINS`` or every installed one), loaded on first use only, so a client
        that never needs a client-side plugin (bus, startup) never scans entry points."""
        if self._manager is None:
            from corral.hooks import load_plugins  # deferred: entry points cost ~25 ms to scan

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
        as it gets ready (see corral.client.actions)."""
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
        The result's ``lines`` say what happened to each app (corral.daemon.commands.reconcile)."""
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
        if not self._watches_progress:
            raise CorralError("progress= is a Client's; an AsyncClient reads launch_bus()")
        from corral.client import (
            actions,  # deferred: corral.client.actions, off connect()+list()'s import path
        )

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

    def list(self, *, env: bool = False) -> list[ProcessInfo]:
        """Every process, by pm_id. The reply is compact and leaves out each app's
        environment: a ProcessInfo fetches it when first asked for it (``env``,
        ``pm2_env``, ``to_dict()``; one ``describe`` of its pm_id), every other
        property is in the reply. ``env=True`` brings every environment at once
        (``pm2 jlist``'s payload). Memory and CPU figures are at most 1 s old
        (``describe`` samples them afresh)."""
        return self._list(env)

    def _list(self, env: bool) -> Any:
        raise NotImplementedError

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


def _subscriber(client: Calls, address: str, topics: list[str] | None) -> Any:
    """The subscriber a plugin opens at ``address`` (``corral_bus_subscriber``); this
    process's plugins load on the first call only, so a client that never subscribes
    never imports them."""
    bus = client.local_plugins().pm.hook.corral_bus_subscriber(address=address, topics=topics)
    if bus is None:
        raise PluginError(NO_SUBSCRIBER)
    return bus
