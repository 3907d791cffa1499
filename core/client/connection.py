"""``connect()`` and ``current()``: a client of the daemon of a home (started if none
answers), of one on a thread of this process, or of one elsewhere."""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any

from corral import paths
from corral.client.launcher import ensure_daemon, read_daemon_pid
from corral.client.remote import _ping, _remote_target
from corral.client.sync import Client
from corral.daemon import homelock
from corral.errors import DaemonError
from corral.rpc.wire import pid_alive

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
        from corral.daemon.kernel import (
            Daemon,  # deferred: the whole daemon, only for one in this process
        )

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


def current() -> Client:
    """The client of the last ``connect()`` (PM2's singleton)."""
    if not _current:
        raise DaemonError("not connected: call corral.connect() first")
    return _current[0]
