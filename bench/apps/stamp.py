"""Append ``start <monotonic ns> <pid>`` to STAMPS when it starts, then sleep.

The subject of watch_restart_latency: the new child's stamp ends the clock the
bench started when it touched a file of the watched directory. CLOCK_MONOTONIC
is the same clock in every process here.
"""

import os
import sys
import time

with open(sys.argv[1], "a") as stamps:
    stamps.write(f"start {time.monotonic_ns()} {os.getpid()}\n")
while True:
    time.sleep(3600)
