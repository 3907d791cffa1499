"""corral.testing: pytest fixtures for testing corral plugins against a real daemon.

corral registers this module as a pytest plugin (the ``pytest11`` entry point
``corral``), so every project that has corral installed gets the fixtures
below with no conftest; ``pytest -p no:corral`` turns them off.

Fixtures:

- ``corral_home``: a short private ``CORRAL_HOME`` under ``/tmp`` (a unix
  socket path must stay under ~100 bytes, which ``tmp_path`` often is not),
  with ``CORRAL_PLUGINS`` set to ``""`` so no installed plugin loads unless a
  test names it. At teardown every process started during the test is killed
  by pid: a detached daemon serving the home, the apps it recorded, and any
  new child of the test process. Then the directory is removed.
- ``corral_events``: the :class:`EventRecorder` of this test, a plugin that
  keeps every process event and child message the daemon reports.
- ``corral_daemon``: a factory, ``corral_daemon(plugins=[...])``, returning a
  :class:`corral.Client` of an in-process daemon on ``corral_home``
  (``corral.connect(no_daemon=True, plugins=...)``). Plugins are modules,
  objects, or installed entry-point names; ``corral_events`` is added to them,
  and is also ``client.events``. The daemon and its apps stop at teardown.
  Only one daemon serves a home at a time: ``client.disconnect()`` the first
  before asking for another (to see what a plugin does across a restart).
- ``scripted_app``: a factory writing a small Python app into ``tmp_path``
  and returning its path. Each behaviour is a keyword, done in this order:

  - ``allocate_mb=N``: hold N MiB, written so that it is resident;
  - ``print_lines=N``: print ``line 1`` ... ``line N`` on stdout;
  - ``open_port=True``: listen on the socket the daemon shares
    (``corral.child.listen_socket()``, when ``LISTEN_FDS`` is set) or on
    ``127.0.0.1:0``, print ``port=<port>``, and answer each connection with
    the app's pid and a newline;
  - ``ready=True``: call ``corral.child.ready()`` (for ``wait_ready``);
  - ``crash_after=S``: after S seconds print ``crashing`` on stderr and exit
    with status 1. Without it the app runs until it is stopped, and exits 0
    on SIGINT or SIGTERM (its handlers are set before it prints anything: wait
    for its first line before a stop whose exit status matters).

  ``app_source(**behaviours)`` returns the same program as text.

Functions to import (``from corral.testing import wait_for, wait_for_event``):

- ``wait_for(predicate, timeout=15, what="condition")``: poll until the
  predicate returns something truthy and return it; fail after ``timeout``.
- ``wait_for_event(client_or_recorder, event, name=None, timeout=10)``: the
  process event (``"online"``, ``"exit"``, ``"restart"``...) once it is
  recorded, for the app ``name`` (or pm_id) if given; ``count=``, ``since=``
  and ``reason=`` narrow it further. No bus needed.
- ``wait_for_message(client_or_recorder, name=None, timeout=10)``: the same
  for a message a child sent (``corral.child.send()``).
- ``output_lines(client, target, stream="out")``: the lines an app wrote to
  its log file so far.

Example::

    from corral.testing import wait_for_event

    import my_plugin


    def test_my_plugin_restarts_a_crashing_app(corral_daemon, scripted_app):
        pm = corral_daemon(plugins=[my_plugin])
        pm.start(scripted_app(crash_after=0.5), {"name": "app"})
        wait_for_event(pm, "exit", "app")
        assert wait_for_event(pm, "online", "app", count=2)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

import corral
from corral.rpc.wire import pid_alive
from corral.supervisor import cgroup_home
from corral.testing.recorder import ChildMessage, EventRecorder, wait_for_event, wait_for_message

# public here, wherever defined: plugin authors import these from corral.testing
__all__ = [
    "ChildMessage",
    "EventRecorder",
    "app_source",
    "apps_of",
    "kill_tree",
    "output_lines",
    "wait_exited",
    "wait_for",
    "wait_for_event",
    "wait_for_message",
]

T = TypeVar("T")


# -- waiting -------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 15.0,
    what: str = "condition",
    *,
    interval: float = 0.01,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails the test with ``what`` and the last value after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not met within {timeout:g} s (last value: {last!r})")
        time.sleep(interval)


def output_lines(client: corral.Client, target: str | int, stream: str = "out") -> list[str]:
    """The lines the app ``target`` wrote to its ``out`` (or ``err``) log so far."""
    info = client.describe(target)[0]
    path = info.out_log if stream == "out" else info.err_log
    if not path:
        return []
    try:
        return Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


# -- cleanup by pid ------------------------------------------------------------


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants, and reap the ones that are ours.

    For processes no fixture knows about (a daemon a test killed, say)."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_exited([proc.pid for proc in family], timeout=5)


HELPERS = ("corral.supervisor.spawnserver", "corral.supervisor.fdholder")


def apps_of(daemon_pid: int) -> list[psutil.Process]:
    """The processes a daemon started for its apps (zombies included): the children of
    its spawner (corral.supervisor.spawnserver), and its own children but its helpers."""
    found = []
    try:
        children = psutil.Process(daemon_pid).children()
    except psutil.Error:
        return []
    for child in children:
        try:
            cmdline = child.cmdline()
        except psutil.ZombieProcess:
            cmdline = []
        except psutil.Error:
            continue
        if any(helper in cmdline for helper in HELPERS):
            if HELPERS[0] in cmdline:
                with contextlib.suppress(psutil.Error):
                    found += child.children()
            continue
        found.append(child)
    return found


def wait_exited(pids: list[int], timeout: float) -> None:
    """Wait until every pid has exited, reaping those that are our children. A zombie
    that is not ours counts as exited: its parent (init, or this machine's pid 1,
    which may reap a second later) is not ours to wait for."""
    deadline = time.monotonic() + timeout
    left = list(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                left.remove(pid)
        if left:
            time.sleep(0.01)


def _stop_detached_daemon(home: Path) -> None:
    try:
        pid = int((home / "corral.pid").read_text())
    except (OSError, ValueError):
        return
    if pid == os.getpid():  # an in-process daemon that did not clean up: never ourselves
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)  # lets it stop its apps
    wait_exited([pid], timeout=5)
    kill_tree(pid)


def _stop_pid_file(path: Path) -> None:
    try:
        pid = int(path.read_text())
    except (OSError, ValueError):
        return
    if pid != os.getpid():
        kill_tree(pid)


def _recorded_app_pids(home: Path) -> list[int]:
    """Apps of a daemon killed with SIGKILL are only known from its state file."""
    try:
        apps = json.loads((home / "state.json").read_text()).get("apps", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [int(app["pid"]) for app in apps if isinstance(app, dict) and app.get("pid")]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def corral_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A short private ``CORRAL_HOME`` with no plugins; everything started in it is killed."""
    home = Path(tempfile.mkdtemp(prefix="corral-", dir="/tmp"))
    monkeypatch.setenv("CORRAL_HOME", str(home))
    monkeypatch.setenv("CORRAL_PLUGINS", "")
    monkeypatch.delenv("CORRAL_DUMP_FILE", raising=False)
    before = _children()
    yield home
    _stop_detached_daemon(home)
    _stop_pid_file(
        home / "fdholder.pid"
    )  # corral.supervisor.fdholder, left holding a killed daemon's pipes
    for pid in sorted(_children() - before):
        kill_tree(pid)
    for pid in _recorded_app_pids(home):
        kill_tree(pid)
    cgroup_home.end_home(home)  # what a daemon killed by the test left in its cgroups
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def second_corral_home() -> Iterator[Path]:
    """Another short private home, for a second daemon in the same process
    (``corral.connect(second_corral_home, no_daemon=True)``); the environment is left
    to ``corral_home``. Everything its daemon recorded is killed by pid at the end."""
    home = Path(tempfile.mkdtemp(prefix="corral-b-", dir="/tmp"))
    yield home
    _stop_detached_daemon(home)
    for pid in _recorded_app_pids(home):
        kill_tree(pid)
    cgroup_home.end_home(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def corral_events() -> EventRecorder:
    """The recorder ``corral_daemon`` adds to every daemon it starts in this test."""
    return EventRecorder()


@pytest.fixture
def corral_daemon(
    corral_home: Path, corral_events: EventRecorder
) -> Iterator[Callable[..., corral.Client]]:
    """A factory of in-process daemons: ``corral_daemon(plugins=[...])`` -> Client."""
    clients: list[corral.Client] = []

    def start(plugins: Iterable[Any] = ()) -> corral.Client:
        chosen = list(plugins)
        if not any(p is corral_events for p in chosen):
            chosen.append(corral_events)
        client = corral.connect(corral_home, no_daemon=True, plugins=chosen)
        client.events = corral_events  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield start
    for client in reversed(clients):
        client.disconnect()


_ALLOCATE = """\
ballast = b"\\x01" * ({mb} * 1024 * 1024)  # written, so resident
"""

_PRINT = """\
for i in range(1, {n} + 1):
    print(f"line {{i}}", flush=True)
"""

_OPEN_PORT = """\
import socket
import threading

if os.environ.get("LISTEN_FDS"):
    import corral.child

    server = corral.child.listen_socket()
else:
    server = socket.create_server(("127.0.0.1", 0))
address = server.getsockname()
print(f"port={address[1] if isinstance(address, tuple) else address}", flush=True)


def serve():
    while True:
        conn, _ = server.accept()
        with conn:
            conn.sendall(f"{os.getpid()}\\n".encode())


threading.Thread(target=serve, daemon=True).start()
"""

_READY = """\
import corral.child

corral.child.ready()
"""

_CRASH = """\
time.sleep({seconds})
print("crashing", file=sys.stderr, flush=True)
sys.exit(1)
"""

_RUN = """\
while True:
    time.sleep(3600)
"""


def app_source(
    *,
    crash_after: float | None = None,
    print_lines: int = 0,
    allocate_mb: int = 0,
    open_port: bool = False,
    ready: bool = False,
) -> str:
    """The source of a ``scripted_app`` with these behaviours."""
    parts = [
        '"""Written by corral.testing.scripted_app."""\n',
        "import os\nimport signal\nimport sys\nimport time\n",
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(0))\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n",
    ]
    if allocate_mb:
        parts.append(_ALLOCATE.format(mb=int(allocate_mb)))
    if print_lines:
        parts.append(_PRINT.format(n=int(print_lines)))
    if open_port:
        parts.append(_OPEN_PORT)
    if ready:
        parts.append(_READY)
    parts.append(_RUN if crash_after is None else _CRASH.format(seconds=float(crash_after)))
    return "\n".join(parts)


@pytest.fixture
def scripted_app(tmp_path: Path) -> Callable[..., str]:
    """A factory: ``scripted_app(name="app", **behaviours)`` writes the app, returns its path."""

    def write(name: str = "app", **behaviours: Any) -> str:
        path = tmp_path / f"{name}.py"
        path.write_text(app_source(**behaviours))
        return str(path)

    return write
