"""Ignores SIGINT, so only SIGKILL stops it; forks a grandchild that does the same."""

import os
import signal
import sys
import time

signal.signal(signal.SIGINT, signal.SIG_IGN)
if len(sys.argv) > 1 and sys.argv[1] == "fork":
    child = os.fork()
    if child == 0:
        while True:
            time.sleep(3600)
    print(f"grandchild={child}", flush=True)
print("ready", flush=True)
while True:
    time.sleep(3600)
