"""A long-running app that does nothing: the subject of the start and restart benchmarks."""

import time

while True:
    time.sleep(3600)
