"""Stamp its start, grow past the memory limit, stamp that, then sleep.

    python hog.py STAMPS MIB ALLOCATIONS PERIOD

Appends ``start <monotonic ns> <pid>`` to STAMPS at once; then, while STAMPS
holds at most ALLOCATIONS starts, waits a random time within PERIOD seconds
(the manager's sampling period: a leak comes at any moment of its cycle, not
just after the sample that saw the last child start), allocates MIB MiB
(written, so resident) and appends ``alloc <monotonic ns> <pid>``.
memory_limit_latency is the time from an ``alloc`` to the next ``start``: the
manager noticed, stopped it and started its replacement. The last replacement
allocates nothing and just sleeps.

SIGINT and SIGTERM wait while it allocates and stamps: a manager that samples
mid-allocation (the figure is already over the limit) stops it only once its
``alloc`` line is written, instead of killing it unstamped, which made the run
fail with "N allocations stamped" on a loaded machine.
"""

import os
import random
import signal
import sys
import time

MIB = 1024 * 1024

path = sys.argv[1]
mib, allocations, period = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])


def stamp(kind: str) -> int:
    with open(path, "a") as stamps:
        stamps.write(f"{kind} {time.monotonic_ns()} {os.getpid()}\n")
    with open(path) as stamps:
        return sum(line.startswith("start ") for line in stamps)


if stamp("start") <= allocations:
    time.sleep(random.uniform(0, period))
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)  # a stop waits for the stamp
    hog = b"\x01" * (mib * MIB)
    stamp("alloc")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
while True:
    time.sleep(3600)
