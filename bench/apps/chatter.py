"""Writes 100-byte log lines to stdout as fast as it can for SECONDS, then sleeps.

One write() per line, so the manager reads them in whatever chunks it can.
"""

import os
import sys
import time

seconds = float(sys.argv[1])
line = b"x" * 99 + b"\n"
end = time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(1000):
        os.write(1, line)
while True:
    time.sleep(3600)
