"""Answers every line of its stdin with ``got: LINE``; says so when its stdin ends."""

import sys

print("ready", flush=True)
for line in sys.stdin:
    print("got: " + line.rstrip("\n"), flush=True)
print("stdin closed", flush=True)
