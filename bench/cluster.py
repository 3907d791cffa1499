"""The cluster group: 4 instances of one node HTTP app sharing a port, under load.

Every tool that can runs ``bench/apps/web.js``, which answers every request with
its pid: ``corral start web.js -x cluster -i 4 --port P`` (the daemon binds P
once and every instance accepts on that socket, fd 3), ``PORT=P pm2 start
web.js -i 4`` (node's cluster module: PM2's daemon is the primary, accepts each
connection and hands it to a worker), and for circus a ``[socket:web]`` on P
and a ``[watcher:web]`` with ``use_sockets`` and ``numprocesses = 4`` (circusd
binds P once; each instance gets the fd as its argument and accepts on it).
supervisor has no way to share a port between HTTP instances. A session per
run and tool measures, in this order:

- ``rps_cluster``: requests/s answered during a window (``--window``);
- ``reload_under_load``: 3 reload commands in a row (``reload web``; circus:
  ``circusctl reload web``, graceful: 4 new instances, then the old ones get
  SIGINT) while the load runs at RELOAD_RATE requests/s: the requests that
  failed (errors and timeouts) per reload, and each reload's wall time; every
  reload must replace the 4 pids.

The load is the same client for every tool: CLIENT_PROCESSES processes of
CLIENT_THREADS threads, each sending ``GET /`` in a loop, a fresh connection per
request (``Connection: close``: every request goes through accept), with a
REQUEST_TIMEOUT on each socket operation, so a request a reload leaves hanging
counts as failed instead of blocking the client. For ``rps_cluster`` the loops
go as fast as they are answered; during the reloads they are paced to
RELOAD_RATE in all, so both tools do the same work while they reload (unpaced,
the tool that answers faster also gets more requests, and the CPU they take
slows the new instances' boot).
"""

from __future__ import annotations

import multiprocessing
import socket
import statistics
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from metrics import shutdown, wait_pids
from suite import Result, Settings
from tools import APPS, BenchError, Tool

WEB = APPS / "web.js"
PLAIN = APPS / "plain.js"  # unchanged: listen(process.env.PORT || 3000), no signal handler
INSTANCES = 4
CLIENT_PROCESSES = 2  # one per core here: a single Python process tops out first
CLIENT_THREADS = 4
REQUEST_TIMEOUT = 2.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
# requests/s during the reloads, about half what PM2 answers here; None: flat out
RELOAD_RATE: float | None = 2000.0
WARM_TIMEOUT = 15.0


def cluster(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """Start 4 instances on a free port, then measure what ``wanted`` asks, in one session."""
    return _session(
        tool, settings, wanted, "", lambda port: tool.start_cluster(WEB, "web", INSTANCES, port)
    )


def cluster_plain(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    """The same with ``bench/apps/plain.js``, started as a PM2 user starts it: cluster
    mode, 4 instances, PORT in the environment, no port option, no change to the app."""
    return _session(
        tool,
        settings,
        wanted,
        "_plain",
        lambda port: tool.start_cluster_plain(PLAIN, "web", INSTANCES, port),
    )


def _session(
    tool: Tool, settings: Settings, wanted: set[str], suffix: str, start: Callable[[int], None]
) -> Result:
    """``start`` the app on a free port, then its rps and reload metrics (names + ``suffix``)."""
    if not settings.node:
        raise BenchError("node is not on PATH: the cluster benchmarks run a node app")
    values: dict[str, float] = {}
    raw: dict[str, Any] = {}
    tool.new_home()
    try:
        port = free_port()
        start(port)
        pids = set(_instances(tool))
        if f"rps_cluster{suffix}" in wanted:
            values[f"rps_cluster{suffix}"], raw[f"rps{suffix}"] = _rps(
                port, pids, settings.window_seconds
            )
        if ("reload_plain" if suffix else "reload_under_load") in wanted:
            found: dict[str, Any] = {}
            _reloads(tool, port, pids, settings.reloads, found, raw)
            values[f"reload_failed{suffix}"] = found["reload_failed"]
            values[f"reload_time{suffix}"] = found["reload_time"]
            raw[f"reload{suffix}"] = raw.pop("reload")
    finally:
        shutdown(tool)
    return values, raw


def _rps(port: int, pids: set[int], window: float) -> tuple[float, dict[str, Any]]:
    """Requests answered per second over ``window`` seconds, the load already warm."""
    with Load(port) as load:
        t0 = time.monotonic()
        time.sleep(window)
        t1 = time.monotonic()
        done = load.stop()
    answered = sum(1 for t in done.ok_times if t0 <= t < t1)
    stray = set(done.pids) - pids
    if stray:
        raise BenchError(f"pids {sorted(stray)} answered, not one of the instances {sorted(pids)}")
    failed = [kind for t, kind in done.failures if t0 <= t < t1]
    raw = {
        "window_s": t1 - t0,
        "answered": answered,
        "failed": len(failed),
        "failure_kinds": dict(Counter(failed)),
        "answers_per_pid": sorted(done.pids.values(), reverse=True),
    }
    return answered / (t1 - t0), raw


def _reloads(tool: Tool, port: int, pids: set[int], reloads: int, values: dict, raw: dict) -> None:
    """``reloads`` reload commands in a row under load; failures counted until the last
    request a reload could have left hanging has timed out."""
    times, changed, windows = [], [], []
    with Load(port, rate=RELOAD_RATE) as load:
        for _ in range(reloads):
            t0 = perf_counter()
            began = time.monotonic()
            tool.reload("web")
            times.append(perf_counter() - t0)
            windows.append((began - load.started, time.monotonic() - load.started))
            now = set(_instances(tool))
            changed.append(len(pids - now))
            pids = now
        time.sleep(REQUEST_TIMEOUT + 0.5)
        done = load.stop()
    if changed != [INSTANCES] * reloads:
        raise BenchError(f"{tool.label}: reloads replaced {changed} of {INSTANCES} pids each")
    values["reload_failed"] = len(done.failures) / reloads
    values["reload_time"] = statistics.median(times)
    raw["reload"] = {
        "reload_s": times,
        "pids_changed": changed,
        "reload_windows_s": windows,
        "answered": len(done.ok_times),
        "rate": len(done.ok_times) / (done.ended - load.started),
        "failed": len(done.failures),
        "failures": [(round(t - load.started, 4), kind) for t, kind in done.failures],
        "failure_kinds": dict(Counter(kind for _, kind in done.failures)),
        "load_s": done.ended - load.started,
    }


def _instances(tool: Tool) -> list[int]:
    """The pids of the INSTANCES instances of web, once there are that many."""
    return wait_pids(tool, "web", lambda pids: len(pids) == INSTANCES, f"{INSTANCES} instances")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the load ---------------------------------------------------------------------


@dataclass
class Outcome:
    """What the clients saw: when each answer came, each failure and its kind, who answered."""

    ok_times: list[float] = field(default_factory=list)  # time.monotonic() of each answer
    failures: list[tuple[float, str]] = field(default_factory=list)
    pids: Counter[int] = field(default_factory=Counter)
    ended: float = 0.0


class Load:
    """CLIENT_PROCESSES client processes sending requests to ``port`` until :meth:`stop`.

    Entering waits until every process had an answer. ``time.monotonic()`` is
    the same clock in every process (CLOCK_MONOTONIC), so their times compare.
    """

    def __init__(
        self, port: int, processes: int = CLIENT_PROCESSES, rate: float | None = None
    ) -> None:
        self.port = port
        # each thread paced to its share of ``rate`` requests/s; None: as fast as answered
        interval = processes * CLIENT_THREADS / rate if rate else 0.0
        context = multiprocessing.get_context()
        self._stop = context.Event()
        self._results = context.Queue()
        self._warm = [context.Event() for _ in range(processes)]
        self._procs = [
            context.Process(
                target=client_process,
                args=(port, CLIENT_THREADS, interval, self._stop, warm, self._results),
                daemon=True,
            )
            for warm in self._warm
        ]
        self.started = 0.0
        self._outcome: Outcome | None = None

    def __enter__(self) -> Load:
        for proc in self._procs:
            proc.start()
        deadline = time.monotonic() + WARM_TIMEOUT
        for warm in self._warm:
            if not warm.wait(max(0.0, deadline - time.monotonic())):
                self._kill()
                raise BenchError(f"no answer on port {self.port} within {WARM_TIMEOUT:g} s")
        self.started = time.monotonic()
        return self

    def stop(self) -> Outcome:
        """Stop sending; each thread ends its request in flight (REQUEST_TIMEOUT at most)."""
        if self._outcome is not None:
            return self._outcome
        self._stop.set()
        outcome = Outcome(ended=time.monotonic())
        for _ in self._procs:
            try:
                ok, failures, pids = self._results.get(timeout=4 * REQUEST_TIMEOUT + 10)
            except Exception as exc:  # queue.Empty: a client process is stuck or gone
                self._kill()
                raise BenchError("a load client did not report back") from exc
            outcome.ok_times.extend(ok)
            outcome.failures.extend(failures)
            outcome.pids.update(pids)
        for proc in self._procs:
            proc.join(10)
        self._outcome = outcome
        return outcome

    def __exit__(self, *exc: object) -> None:
        if self._outcome is None:
            self._stop.set()
            self._kill()

    def _kill(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
            proc.join(5)


def client_process(
    port: int, threads: int, interval: float, stop: Any, warm: Any, results: Any
) -> None:
    """One client process: ``threads`` request loops until ``stop``; reports to ``results``.

    With an ``interval``, each loop starts a request every ``interval`` seconds
    (or at once, when the previous one took longer)."""
    ok_times = array("d")
    failures: list[tuple[float, str]] = []
    pids: Counter[int] = Counter()
    lock = threading.Lock()

    def loop() -> None:
        mine_ok, mine_failed, mine_pids = array("d"), [], Counter()
        next_at = time.monotonic()
        while not stop.is_set():
            if interval:
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    next_at -= pause  # late: no burst to catch up
            pid, problem = request(port)
            now = time.monotonic()
            if problem:
                mine_failed.append((now, problem))
                continue
            mine_ok.append(now)
            mine_pids[pid] += 1
            if not warm.is_set():
                warm.set()
        with lock:
            ok_times.extend(mine_ok)
            failures.extend(mine_failed)
            pids.update(mine_pids)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((ok_times.tolist(), failures, dict(pids)))


def request(port: int) -> tuple[int, str]:
    """``GET /`` on a new connection: (the answering pid, "") or (0, what went wrong).

    A plain socket rather than http.client, whose header parsing costs more CPU
    than the server's answer: on 2 cores, that halved the rate a client
    could measure. Each socket operation has REQUEST_TIMEOUT, as http.client's.
    """
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT) as sock:
            sock.sendall(REQUEST)
            while chunk := sock.recv(4096):
                chunks.append(chunk)
    except TimeoutError:
        return 0, "timeout"
    except OSError as exc:
        return 0, type(exc).__name__
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if not status.startswith(b"HTTP/1.1 200 ") or not body.isdigit():
        return 0, f"bad answer {status[:40]!r}" if status else "empty answer"
    return int(body), ""
