"""Sends COUNT messages every INTERVAL_MS to the process manager's bus, then sleeps.

Each message is ``{"type": "process:msg", "data": {"n", "t", "warm"}}`` with
``t = time.monotonic_ns()`` taken just before the send: CLOCK_MONOTONIC, the
clock of the subscriber's ``time.monotonic_ns()`` and node's
``process.hrtime.bigint()``. Under corral it goes through ``corral.child.send``;
under PM2 it is written, as node's IPC would, on the channel PM2 opens for
every child (``NODE_CHANNEL_FD``, JSON lines). The first WARM messages are
marked ``warm`` for the subscriber to skip.
"""

import json
import os
import sys
import time

count, interval = int(sys.argv[1]), float(sys.argv[2]) / 1000
WARM = 10

if os.environ.get("CORRAL_CHANNEL_FD"):
    import corral.child

    def send(data: dict) -> None:
        corral.child.send(data)

else:
    channel = int(os.environ["NODE_CHANNEL_FD"])

    def send(data: dict) -> None:
        message = {"type": "process:msg", "data": data}
        os.write(channel, json.dumps(message, separators=(",", ":")).encode() + b"\n")


time.sleep(0.5)  # let the start command finish: the daemon is idle when the clock runs
next_at = time.monotonic()
for n in range(WARM + count):
    next_at += interval
    send({"n": n, "t": time.monotonic_ns(), "warm": n < WARM})
    time.sleep(max(0.0, next_at - time.monotonic()))
while True:
    time.sleep(3600)
