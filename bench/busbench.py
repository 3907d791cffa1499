"""The bus group: events from one daemon to one subscriber, and a message's latency.

Each measurement has a daemon of its own (``ping``), then one subscriber,
subscribed before the app starts:

- ``bus_throughput``: the app (``bench/apps/chatter.py``) writes 100-byte lines
  to stdout as fast as it can; the subscriber counts the ``log:out`` events (and
  the lines they carry) arriving in a window (``--window``) from the first one.
  Both daemons publish one ``log:out`` event per chunk read from the app's pipe,
  so events/s depends on the chunk size; lines/s is the payload's rate.
- ``bus_latency``: the app (``bench/apps/sender.py``) sends a message every
  10 ms carrying ``time.monotonic_ns()``; latency = the subscriber's clock on
  receipt minus that (CLOCK_MONOTONIC, one clock for every process here). The
  first 10 messages warm the path and are not counted; then 200 are.

corral's subscriber is this file run by ``--python`` (``PY busbench.py
subscribe MODE ARG``), with ``corral.connect().launch_bus([topic])``; PM2's is
``bench/apps/pm2_bus.js``, with the ``pm2`` package's ``connect`` and
``launchBus``. Both print ``ready`` once subscribed, then one JSON line.
"""

from __future__ import annotations

import json
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from metrics import shutdown, wait_online, write_ecosystem
from suite import Result, Settings
from tools import APPS, BenchError, Tool

MESSAGES = 200
INTERVAL_MS = 10
SUBSCRIBE_TIMEOUT = 20.0


def bus(tool: Tool, settings: Settings, wanted: set[str]) -> Result:
    values: dict[str, float] = {}
    raw: dict[str, Any] = {}
    if "bus_throughput" in wanted:
        _throughput(tool, settings, values, raw)
    if "bus_latency" in wanted:
        _latency(tool, settings, values, raw)
    return values, raw


def _throughput(tool: Tool, settings: Settings, values: dict, raw: dict) -> None:
    window = settings.window_seconds
    # the app writes on well past the window: the subscriber's window starts at its first event
    app = {"name": "chatter", "script": str(APPS / "chatter.py"), "args": [str(window + 3)]}
    result = _session(tool, settings, app, "throughput", window, timeout=window + 60)
    values["bus_events"] = result["events"] / result["seconds"]
    values["bus_lines"] = result["lines"] / result["seconds"]
    raw["bus_throughput"] = result


def _latency(tool: Tool, settings: Settings, values: dict, raw: dict) -> None:
    app = {
        "name": "sender",
        "script": str(APPS / "sender.py"),
        "args": [str(MESSAGES), str(INTERVAL_MS)],
    }
    result = _session(tool, settings, app, "latency", MESSAGES, timeout=60)
    samples = sorted(us / 1000 for us in result["latencies_us"])
    if len(samples) != MESSAGES:
        raise BenchError(f"{tool.label}: the subscriber got {len(samples)} of {MESSAGES} messages")
    values["bus_latency"] = statistics.median(samples)
    values["bus_latency_p99"] = samples[int(0.99 * (len(samples) - 1) + 0.5)]
    raw["bus_latency_ms"] = {
        "min": samples[0],
        "max": samples[-1],
        "mean": statistics.fmean(samples),
    }


def _session(
    tool: Tool, settings: Settings, app: dict, mode: str, arg: float, timeout: float
) -> dict[str, Any]:
    """A fresh daemon, a subscriber, then the app; the subscriber's result."""
    tool.new_home()
    try:
        tool.ping()
        path = write_ecosystem(
            settings.root / f"bus-{app['name']}.json", [{**app, "interpreter": settings.python}]
        )
        with Subscriber(tool, settings, mode, arg) as subscriber:
            tool.start_file(path)
            wait_online(tool, 1)
            return subscriber.result(timeout)
    finally:
        shutdown(tool)


class Subscriber:
    """The tool's subscriber process: started on enter, subscribed when enter returns."""

    def __init__(self, tool: Tool, settings: Settings, mode: str, arg: float) -> None:
        if tool.label == "corral":
            argv = [settings.python, str(Path(__file__).resolve()), "subscribe", mode, str(arg)]
        else:
            if not settings.node:
                raise BenchError("node is not on PATH: PM2's bus subscriber is a node script")
            module = str(tool.prefix / "node_modules" / "pm2")  # type: ignore[attr-defined]
            argv = ["node", str(APPS / "pm2_bus.js"), module, mode, str(arg)]
        self.label = tool.label
        self.argv = argv
        self.env = tool.env()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Subscriber:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        while (line := self._line(SUBSCRIBE_TIMEOUT)) != "ready":
            if line is None:
                raise BenchError(f"{self.label}'s bus subscriber did not subscribe: {self._why()}")
        return self

    def result(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            line = self._line(deadline - time.monotonic())
            if line is None:
                raise BenchError(f"{self.label}'s bus subscriber gave no result: {self._why()}")
            if line.startswith("{"):
                result = json.loads(line)
                if "error" in result:
                    raise BenchError(f"{self.label}'s bus subscriber: {result['error']}")
                return result

    def _line(self, timeout: float) -> str | None:
        """The next line of the subscriber's stdout; None at its end or after ``timeout``."""
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, timeout))
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return line.decode().strip() if line else None

    def _why(self) -> str:
        assert self.proc is not None
        self._stop()
        err = self.proc.stderr.read().decode() if self.proc.stderr else ""
        return " | ".join(err.strip().splitlines()[-5:]) or f"exit code {self.proc.returncode}"

    def _stop(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self._stop()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


# -- corral's subscriber, run by --python -------------------------------------------


def subscribe(mode: str, arg: float) -> dict[str, Any]:
    """Subscribe, print ``ready``, then measure; the figures to print."""
    import corral

    client = corral.connect()
    topic = "log:out" if mode == "throughput" else "process:msg"
    with client.launch_bus([topic]) as subscription:
        print("ready", flush=True)
        if mode == "throughput":
            return _count(subscription, arg)
        return _times(subscription, int(arg))


def _count(subscription: Any, seconds: float) -> dict[str, Any]:
    """The events in [first, first + seconds) and the lines and bytes they carry."""
    if subscription.recv(timeout=60) is None:
        return {"error": "no log:out event in 60 s"}
    end = time.monotonic() + seconds
    events = lines = size = 0
    while (left := end - time.monotonic()) > 0:
        event = subscription.recv(timeout=left)
        if event is None or time.monotonic() >= end:
            break
        events += 1
        data = event.payload.get("data", "")
        lines += data.count("\n")
        size += len(data.encode())
    return {
        "events": events,
        "lines": lines,
        "bytes": size,
        "seconds": seconds,
        "dropped": subscription.dropped,
    }


def _times(subscription: Any, count: int) -> dict[str, Any]:
    samples: list[float] = []
    deadline = time.monotonic() + 60
    while len(samples) < count:
        event = subscription.recv(timeout=max(0.0, deadline - time.monotonic()))
        now = time.monotonic_ns()
        if event is None:
            return {"error": f"{len(samples)} of {count} messages in 60 s"}
        data = event.payload.get("data")
        if isinstance(data, dict) and not data.get("warm") and isinstance(data.get("t"), int):
            samples.append((now - data["t"]) / 1000)
    return {"latencies_us": samples}


if __name__ == "__main__":
    if sys.argv[1:2] != ["subscribe"] or len(sys.argv) != 4:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} subscribe throughput|latency ARG")
    print(json.dumps(subscribe(sys.argv[2], float(sys.argv[3]))), flush=True)
