"""The synchronous client, ``Client``: the calls of ``Calls`` over a blocking socket,
safe from several threads, and the calls only it has (update, startup, jlist_json)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.client.calls import (
    NO_BUS,
    NO_STARTUP,
    STARTUP_PLUGIN,
    Calls,
    Progress,
    _subscriber,
    needs_plugin,
)
from corral.client.info import ProcessInfo, env_of, from_rows, old_daemon
from corral.client.launcher import wait_daemon_gone
from corral.client.remote import Remote, _endpoint
from corral.client.requests import (
    _infos,
    _new_options,
    _renames,
    _restarted,
    _started,
    start_request,
)
from corral.errors import DaemonError, NotFoundError, PluginError, ProtocolError
from corral.rpc.table import with_pm2_names
from corral.rpc.wire import SyncTransport, pid_alive

if TYPE_CHECKING:
    from corral.client.connection import _InProcess
    from corral.client.verdict import StartVerdict


@with_pm2_names
class Client(Calls):
    """A synchronous client; safe to use from several threads at once.

    ``remote`` (from ``connect(address=...)``): the daemon of another machine,
    over TCP; ``home`` and ``daemon_pid`` are then None.
    """

    _watches_progress = True  # an AsyncClient reads launch_bus() instead
    _old_list = False  # the daemon refused list's compact form: it predates it

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

    def _list(self, env: bool) -> list[ProcessInfo]:
        if not self._old_list:
            try:
                reply = self._transport.call("list", {"form": "rows", "env": env})
                return from_rows(reply, self._fetch_env)
            except ProtocolError as exc:
                if not old_daemon(exc):
                    raise
                self._old_list = True  # a daemon from before the compact list
        return self._send("list", {}, _infos)

    def _fetch_env(self, pm_id: int, name: str) -> dict[str, str]:
        """A listed process's env, fetched when first asked for (one describe)."""
        return env_of(_infos(self._transport.call("describe", {"target": pm_id})), pm_id, name)

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
        :class:`corral.client.verdict.StartFailed` (a StateError) naming each exited
        instance, its last error line and the fix, when no instance of an app
        stayed up. ``progress``: called with an event per instance as it gets ready
        (see corral.client.actions).
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

        The :class:`corral.client.verdict.StartVerdict` names each instance that exited
        meanwhile (``exited``: status, restarts, the telling line of its error log,
        the fix; ``EADDRINUSE`` gets cluster mode, ``listen`` or ``port``), the apps
        none of whose instances stayed up (``down``), and ``ok`` when there are none.
        ``corral start`` prints it and exits 1 unless ``ok``.
        """
        from corral.client.verdict import (
            wait_started,  # deferred: corral.client.verdict, only when start waits
        )

        return wait_started(self, infos, timeout)

    def _waited(self, infos: list[ProcessInfo], wait: bool) -> list[ProcessInfo]:
        if not wait:
            return infos
        from corral.client.verdict import (
            StartFailed,  # deferred: corral.client.verdict, only when start waits
        )

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
        whether it kept running or was restarted (see :mod:`corral.daemon.upgrade`)."""
        self._local_only("update")
        from corral.client.updater import (
            update_daemon,  # deferred: the updater, only update runs it
        )

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
