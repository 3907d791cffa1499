"""prometheus: the daemon's apps and its own figures on a Prometheus ``/metrics`` endpoint.

Options (the daemon's environment, read when the daemon starts):

- ``CORRAL_PROMETHEUS_ADDR``: where to listen, ``host:port`` (default
  ``127.0.0.1:9726``). ``[::1]:9726`` for IPv6; a bare port or ``:port``
  means ``127.0.0.1``, so the figures never leave the machine unless a host
  such as ``0.0.0.0`` is written out. Port ``0`` takes a free port (tests).

Per app (labels ``name``, ``pm_id``, ``namespace``):

- ``corral_app_status{status=...}``: 1 for the app's status, 0 for the others
  (``launching``, ``online``, ``stopping``, ``stopped``, ``errored``,
  ``waiting restart``);
- ``corral_app_cpu_percent``: CPU of the app's process tree, averaged since
  the previous scrape (0 on the first);
- ``corral_app_memory_bytes``: resident memory of the app's process tree;
- ``corral_app_restarts_total``: PM2's ``restart_time``;
- ``corral_app_unstable_restarts``: restarts shorter than ``min_uptime`` in the
  current crash streak (0 again once the app is errored or restarted by hand);
- ``corral_app_uptime_seconds``: time since the current child started (0 when
  it is not online).

The daemon: ``corral_daemon_info{version}``, ``corral_daemon_resident_memory_bytes``,
``corral_daemon_cpu_seconds_total``, ``corral_daemon_apps``,
``corral_daemon_uptime_seconds``; and ``corral_prometheus_snapshot_errors_total``,
the scrapes that got no answer from the daemon's loop in time.

The HTTP server runs on its own thread. A scrape asks the daemon's loop for a
snapshot of the process table (cheap: no I/O), then samples CPU and memory
from ``/proc`` on the scraping thread, so the loop never waits for a scrape.
RPC: ``prometheus_address`` -> ``{"address", "host", "port", "url"}``.

Each daemon has its own exporter, on the address it reads when it starts.
Daemons embedded in one process share that environment: with port ``0``
each gets its own free port (ask ``prometheus_address``); with a fixed port
the first serves it and the others fail to bind, each with the clear error
``cannot serve /metrics on ...: Address already in use; set
CORRAL_PROMETHEUS_ADDR to a free host:port`` (in ``corral plugins --errors``),
and run without /metrics, as two daemons of one host do.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psutil
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

import corral
from corral.api import TreeSampler

ENV_ADDR = "CORRAL_PROMETHEUS_ADDR"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9726
SNAPSHOT_TIMEOUT_S = 5.0  # under Prometheus's default scrape_timeout (10 s)
POLL_INTERVAL_S = 0.1  # how soon the server thread notices a shutdown
APP_LABELS = ("name", "pm_id", "namespace")
SAMPLED = ("online", "launching")  # the statuses whose figures jlist shows too
STATE_KEY = "prometheus.exporter"  # each daemon's Exporter, or None (DaemonAPI.state)


# -- the address ---------------------------------------------------------------


def parse_address(value: str) -> tuple[str, int]:
    """``"0.0.0.0:9726"`` -> ``("0.0.0.0", 9726)``; no host means 127.0.0.1."""
    text = value.strip()
    host, port = "", text
    if text.startswith("["):
        host, sep, port = text[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            raise _bad_address(value)
        port = port[1:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
        if ":" in host:  # an IPv6 address needs its brackets to tell it from the port
            raise _bad_address(value)
    if not port.isdigit() or int(port) > 65535:
        raise _bad_address(value)
    return host or DEFAULT_HOST, int(port)


def _bad_address(value: str) -> corral.OptionError:
    return corral.OptionError(
        f"{ENV_ADDR} must be host:port, [ipv6]:port or a port (0-65535), got {value!r}",
        field=ENV_ADDR,
    )


def configured_address() -> tuple[str, int]:
    value = os.environ.get(ENV_ADDR, "")
    return parse_address(value) if value.strip() else (DEFAULT_HOST, DEFAULT_PORT)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- what a scrape reads -------------------------------------------------------


@dataclass(frozen=True)
class AppRow:
    """One process slot as the loop saw it when the scrape asked."""

    name: str
    pm_id: int
    namespace: str
    status: str
    pid: int | None
    restarts: int
    unstable_restarts: int
    uptime_s: float

    @property
    def labels(self) -> list[str]:
        return [self.name, str(self.pm_id), self.namespace]


def app_rows(daemon: Any) -> list[AppRow]:
    """The process table, read on the daemon's loop (attribute reads only)."""
    now_ms = time.time() * 1000
    rows = []
    for proc in daemon.processes():
        env = proc.pm2_env(with_env=False)
        status = env["status"]
        started = env.get("pm_uptime") or 0
        rows.append(
            AppRow(
                name=proc.name,
                pm_id=proc.pm_id,
                namespace=env.get("namespace") or "default",
                status=status,
                pid=proc.pid if status in SAMPLED else None,
                restarts=env.get("restart_time") or 0,
                unstable_restarts=env.get("unstable_restarts") or 0,
                uptime_s=max(0.0, (now_ms - started) / 1000) if status == "online" else 0.0,
            )
        )
    return rows


class CorralCollector:
    """Builds every metric at scrape time, on the HTTP server's thread."""

    def __init__(self, daemon: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.daemon = daemon
        self.loop = loop
        self.started = daemon.started_at / 1000  # epoch ms
        self.statuses = [state.value for state in corral.ProcessState]
        self.snapshot_errors = 0
        self._lock = threading.Lock()  # one sampler, its CPU baselines shared by every scrape
        self._sampler = TreeSampler()  # our own: the daemon's serves `corral ls` on its loop
        self._self = psutil.Process()

    def snapshot(self) -> list[AppRow] | None:
        """The process table from the loop, or None if the loop does not answer in time."""

        async def read() -> list[AppRow]:
            return app_rows(self.daemon)

        try:
            future = asyncio.run_coroutine_threadsafe(read(), self.loop)
            return future.result(SNAPSHOT_TIMEOUT_S)
        except Exception:  # a busy loop (TimeoutError), a closed one (RuntimeError)
            return None

    def collect(self) -> Any:
        rows = self.snapshot()
        with self._lock:
            if rows is None:
                self.snapshot_errors += 1
                rows = []
            pids = [row.pid for row in rows if row.pid]
            figures = self._sampler.sample(pids)
            errors = self.snapshot_errors
        yield from self._app_metrics(rows, figures)
        yield from self._daemon_metrics(len(rows))
        failures = CounterMetricFamily(
            "corral_prometheus_snapshot_errors",
            "Scrapes that got no process table from the daemon's loop in time.",
        )
        failures.add_metric([], errors)
        yield failures

    def _app_metrics(self, rows: list[AppRow], figures: dict[int, tuple[int, float]]) -> Any:
        status = GaugeMetricFamily(
            "corral_app_status",
            "1 for the app's current status, 0 for the others.",
            labels=[*APP_LABELS, "status"],
        )
        cpu = _gauge("corral_app_cpu_percent", "CPU of the app's tree since the previous scrape.")
        memory = _gauge("corral_app_memory_bytes", "Resident memory of the app's process tree.")
        restarts = CounterMetricFamily(
            "corral_app_restarts", "Restarts of the app (restart_time).", labels=APP_LABELS
        )
        unstable = _gauge(
            "corral_app_unstable_restarts",
            "Restarts shorter than min_uptime in the current crash streak.",
        )
        uptime = _gauge("corral_app_uptime_seconds", "Time since the app's child started.")
        for row in rows:
            for value in self.statuses:
                status.add_metric([*row.labels, value], 1 if row.status == value else 0)
            rss, percent = figures.get(row.pid or 0, (0, 0.0))
            cpu.add_metric(row.labels, percent)
            memory.add_metric(row.labels, rss)
            restarts.add_metric(row.labels, row.restarts)
            unstable.add_metric(row.labels, row.unstable_restarts)
            uptime.add_metric(row.labels, row.uptime_s)
        yield from (status, cpu, memory, restarts, unstable, uptime)

    def _daemon_metrics(self, apps: int) -> Any:
        info = GaugeMetricFamily(
            "corral_daemon_info", "The corral daemon's version.", labels=["version"]
        )
        info.add_metric([corral.__version__], 1)
        rss = GaugeMetricFamily(
            "corral_daemon_resident_memory_bytes", "Resident memory of the daemon process."
        )
        cpu = CounterMetricFamily(
            "corral_daemon_cpu_seconds", "User and system CPU time of the daemon process."
        )
        try:
            with self._self.oneshot():
                times = self._self.cpu_times()
                rss.add_metric([], self._self.memory_info().rss)
                cpu.add_metric([], times.user + times.system)
        except psutil.Error:
            pass
        count = GaugeMetricFamily("corral_daemon_apps", "Process slots the daemon manages.")
        count.add_metric([], apps)
        uptime = GaugeMetricFamily("corral_daemon_uptime_seconds", "Time since the daemon started.")
        uptime.add_metric([], max(0.0, time.time() - self.started))
        yield from (info, rss, cpu, count, uptime)


def _gauge(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=APP_LABELS)


# -- the HTTP server -----------------------------------------------------------


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a scrape in flight never holds the daemon's exit


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape on stderr would fill the daemon's output


def _server_class(host: str, port: int) -> type[_Server]:
    """The server for the address family of ``host`` (an IPv4 or IPv6 address, or a name)."""
    try:
        v6 = ipaddress.ip_address(host).version == 6
    except ValueError:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        v6 = infos[0][0] == socket.AF_INET6
    return _Server6 if v6 else _Server


class Exporter:
    """The registry, the server and its thread, for one daemon."""

    def __init__(self, daemon: Any, host: str, port: int) -> None:
        self.daemon = daemon
        self.loop = daemon.loop
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = CorralCollector(daemon, self.loop)
        self.registry.register(self.collector)
        app = make_wsgi_app(self.registry)
        try:
            self.server = make_server(
                host, port, app, _server_class(host, port), handler_class=_QuietHandler
            )
        except OSError as exc:
            raise corral.PluginError(
                f"cannot serve /metrics on {format_address(host, port)}: {exc.strerror or exc}; "
                f"set {ENV_ADDR} to a free host:port"
            ) from exc
        self.host = host
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            args=(POLL_INTERVAL_S,),
            name="corral-prometheus",
            daemon=True,
        )

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def start(self) -> None:
        self.thread.start()
        self.daemon.log.info("prometheus metrics", url=f"http://{self.address}/metrics")

    def stop(self) -> None:
        self.server.shutdown()  # returns within POLL_INTERVAL_S
        self.server.server_close()
        self.thread.join()

    def describe(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "host": self.host,
            "port": self.port,
            "url": f"http://{self.address}/metrics",
        }


# -- hooks ---------------------------------------------------------------------


def exporter_of(daemon: Any) -> Exporter | None:
    """The :class:`Exporter` serving ``daemon`` (a ``corral.api.DaemonAPI``), or None."""
    return daemon.state(STATE_KEY, lambda: None)


@corral.hookimpl
def corral_daemon_start(daemon: Any) -> None:
    daemon.forget_state(STATE_KEY)
    host, port = configured_address()
    exporter = Exporter(daemon, host, port)  # PluginError when the address is taken
    exporter.start()
    daemon.state(STATE_KEY, lambda: exporter)


@corral.hookimpl
def corral_daemon_stop(daemon: Any) -> None:
    exporter = daemon.forget_state(STATE_KEY)
    if exporter is not None:
        exporter.stop()


@corral.hookimpl
def corral_rpc_commands() -> dict[str, Any]:
    return {"prometheus_address": prometheus_address}


def prometheus_address(daemon: Any) -> dict[str, Any]:
    """Where the daemon serves ``/metrics``."""
    exporter = exporter_of(daemon)
    if exporter is None:
        raise corral.PluginError(
            "the prometheus plugin is not serving in this daemon (see `corral plugins --errors`)"
        )
    return exporter.describe()
