"""What the dashboard knows, live: the process list sampled every second, each app's
cpu and memory over the last hour, its recent events, and the browsers to tell.

Two threads feed it, each with its own client of the daemon (the public client API,
never the daemon's insides): the sampler reads the list (``jlist``) every second,
and at once after an event; the bus reader follows ``process:*`` and ``log:*`` on
the bus. Each browser's stream (:meth:`Hub.subscribe`) is an ``asyncio.Queue`` on
the server's loop, bounded: a browser that stops reading loses its stream (it
reconnects and gets the list again), never the server's memory.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import corral
from corral import api

HISTORY = 3600  # samples kept per app: an hour at one a second
EVENTS = 200  # events kept per app
QUEUE = 1000  # messages a browser may be behind before its stream is dropped
PERIOD = 1.0  # seconds between two samples


@dataclass
class Subscriber:
    """One browser's stream: its queue, and the app whose log lines it wants."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue
    logs_of: int | None = None
    dropped: bool = False


@dataclass
class AppHistory:
    """One app's samples (time, cpu %, memory bytes) and its recent events."""

    samples: collections.deque = field(default_factory=lambda: collections.deque(maxlen=HISTORY))
    events: collections.deque = field(default_factory=lambda: collections.deque(maxlen=EVENTS))


def row(proc: dict[str, Any]) -> dict[str, Any]:
    """What the list shows of one process of ``jlist``."""
    env = proc.get("pm2_env") or {}
    monit = proc.get("monit") or {}
    return {
        "pm_id": proc.get("pm_id"),
        "name": proc.get("name"),
        "namespace": env.get("namespace"),
        "status": env.get("status"),
        "pid": proc.get("pid") or None,
        "mode": env.get("exec_mode"),
        "instances": env.get("instances"),
        "uptime": env.get("pm_uptime") if env.get("status") == "online" else None,
        "restarts": env.get("restart_time", 0),
        "cpu": monit.get("cpu", 0),
        "memory": monit.get("memory", 0),
        "health": _health(env.get("health_status")),
    }


def _health(health: Any) -> str | None:
    """The health plugin's ``health_status`` in a word, as ``corral ls`` shows it."""
    return api.health_word(health) if isinstance(health, dict) else None


class Hub:
    """The live state every page and stream reads."""

    def __init__(self, connect: Any = corral.connect) -> None:
        self._connect = connect
        self.procs: list[dict[str, Any]] = []  # the last jlist, as the daemon gave it
        self.rows: list[dict[str, Any]] = []
        self.history: dict[int, AppHistory] = {}
        self.subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.error: str | None = None  # why the last sample failed, if it did

    # -- the threads ----------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._sample_forever, name="web-sampler", daemon=True).start()
        threading.Thread(target=self._follow_bus, name="web-bus", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """Sample now (an action changed the list), not within a second."""
        self._wake.set()

    def _sample_forever(self) -> None:
        client = self._connect()
        while not self._stop.is_set():
            try:
                self.sample(json.loads(client.jlist_json()))
                self.error = None
            except corral.CorralError as exc:
                self.error = str(exc)
            self._wake.wait(PERIOD)
            self._wake.clear()

    def sample(self, procs: list[dict[str, Any]]) -> None:
        """Take one sample of the list; tell every browser."""
        now = time.time()
        rows = [row(p) for p in procs]
        with self._lock:
            self.procs, self.rows = procs, rows
            alive = {r["pm_id"] for r in rows}
            for gone in set(self.history) - alive:
                del self.history[gone]
            for r in rows:
                app = self.history.setdefault(r["pm_id"], AppHistory())
                app.samples.append((round(now, 1), r["cpu"], r["memory"]))
        self.publish({"type": "list", "rows": rows, "at": now})

    def _follow_bus(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as client:  # closed at each reconnect, not leaked
                    for event in client.launch_bus(["process:*", "log:*"]):
                        self.on_bus(event.topic, event.payload)
                        if self._stop.is_set():
                            return
            except corral.CorralError as exc:
                self.error = f"bus: {exc}"
            self._stop.wait(1.0)  # the daemon restarted, or was updated: again

    def on_bus(self, topic: str, payload: dict[str, Any]) -> None:
        """One bus message: an event is kept and sent, a log line sent to its readers."""
        proc = payload.get("process") or {}
        pm_id = proc.get("pm_id")
        if topic == "process:event":
            event = {
                "type": "event",
                "pm_id": pm_id,
                "name": proc.get("name"),
                "event": payload.get("event"),
                "reason": payload.get("reason"),
                "at": payload.get("at"),
            }
            with self._lock:
                app = self.history.setdefault(pm_id, AppHistory())
                app.events.append(event)
            self.publish(event)
            self.wake()  # the list changed
        elif topic in ("log:out", "log:err"):
            line = {
                "type": "log",
                "pm_id": pm_id,
                "stream": topic[4:],
                "data": payload.get("data", ""),
                "at": payload.get("at"),
            }
            self.publish(line, logs_of=pm_id)

    # -- the browsers ---------------------------------------------------------

    def subscribe(self, logs_of: int | None = None) -> Subscriber:
        subscriber = Subscriber(asyncio.get_running_loop(), asyncio.Queue(QUEUE), logs_of)
        with self._lock:
            self.subscribers.append(subscriber)
            rows = self.rows
        subscriber.queue.put_nowait({"type": "list", "rows": rows, "at": time.time()})
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)

    def publish(self, message: dict[str, Any], *, logs_of: int | None = None) -> None:
        """Queue ``message`` for every browser (a log line: only those reading its app)."""
        with self._lock:
            chosen = [s for s in self.subscribers if logs_of is None or s.logs_of == logs_of]
        for subscriber in chosen:
            subscriber.loop.call_soon_threadsafe(_put, subscriber, message)

    # -- reads ----------------------------------------------------------------

    def samples(self, pm_id: int) -> list[tuple[float, float, int]]:
        with self._lock:
            app = self.history.get(pm_id)
            return list(app.samples) if app else []

    def events(self, pm_id: int) -> list[dict[str, Any]]:
        with self._lock:
            app = self.history.get(pm_id)
            return list(app.events) if app else []

    def knows(self, pm_id: int) -> bool:
        """Whether ``pm_id`` is an app of the last list, or one the bus told of since."""
        with self._lock:
            return pm_id in self.history or any(p.get("pm_id") == pm_id for p in self.procs)

    def namespaces_of(self, name: Any) -> set[str]:
        """The namespaces of the apps of the last list named ``name``."""
        with self._lock:
            return {
                str((p.get("pm2_env") or {}).get("namespace", "default"))
                for p in self.procs
                if p.get("name") == name
            }

    def process(self, pm_id: int) -> dict[str, Any] | None:
        with self._lock:
            return next((p for p in self.procs if p.get("pm_id") == pm_id), None)


def _put(subscriber: Subscriber, message: dict[str, Any]) -> None:
    if subscriber.dropped:
        return
    try:
        subscriber.queue.put_nowait(message)
    except asyncio.QueueFull:
        subscriber.dropped = True  # its stream ends once read; the browser reconnects
