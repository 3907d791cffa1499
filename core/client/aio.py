"""The asyncio client, ``AsyncClient``: the calls of ``Client``, awaited."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral import paths
from corral.client.calls import NO_BUS, Calls, _subscriber, needs_plugin
from corral.client.info import ProcessInfo, env_of, from_rows, old_daemon
from corral.client.launcher import ensure_daemon, wait_daemon_gone
from corral.client.remote import Remote, _endpoint, _ping, _remote_target
from corral.client.requests import _infos, _new_options, _renames, _started, start_request
from corral.errors import NotFoundError, PluginError, ProtocolError
from corral.rpc.table import with_pm2_names
from corral.rpc.wire import SyncTransport, pid_alive

if TYPE_CHECKING:
    from corral.client.verdict import StartVerdict


@with_pm2_names
class AsyncClient(Calls):
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
        from corral.rpc.aio import AsyncTransport

        endpoint = _endpoint(home, remote, lambda: pid_alive(self.daemon_pid))
        self._transport = AsyncTransport(*endpoint)
        self._sync: SyncTransport | None = None  # for a listed process's env (see _list)
        self._old_list = False  # the daemon refused list's compact form: it predates it

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

    async def _list(self, env: bool) -> list[ProcessInfo]:
        """:meth:`Client.list`, awaited. A ProcessInfo's env, when fetched on first use
        (not ``env=True``), comes by a blocking describe: one round trip on the loop."""
        if not self._old_list:
            try:
                reply = await self._transport.call("list", {"form": "rows", "env": env})
                return from_rows(reply, self._fetch_env)
            except ProtocolError as exc:
                if not old_daemon(exc):
                    raise
                self._old_list = True  # a daemon from before the compact list
        return await self._send("list", {}, _infos)

    def _fetch_env(self, pm_id: int, name: str) -> dict[str, str]:
        """A listed process's env, fetched when first asked for: a property cannot
        await, so it is one blocking describe on a socket of its own."""
        if self._sync is None:
            alive = lambda: pid_alive(self.daemon_pid)  # noqa: E731
            self._sync = SyncTransport(*_endpoint(self.home, self.remote, alive))
        reply = self._sync.call("describe", {"target": pm_id})
        return env_of(_infos(reply), pm_id, name)

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
        from corral.client.verdict import (
            wait_started_async,  # deferred: corral.client.verdict, only when start waits
        )

        return await wait_started_async(self, infos, timeout)

    async def _waited(self, infos: list[ProcessInfo], wait: bool) -> list[ProcessInfo]:
        if not wait:
            return infos
        from corral.client.verdict import (
            StartFailed,  # deferred: corral.client.verdict, only when start waits
        )

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
        await self.disconnect()

    async def disconnect(self) -> None:
        if self._sync is not None:
            self._sync.close()
        await self._transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
