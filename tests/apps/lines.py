"""Writes N numbered lines of 100 bytes to stdout (argv[1]), then a partial last line."""

import sys

n = int(sys.argv[1])
out = sys.stdout.buffer
for i in range(n):
    out.write(b"%010d" % i + b"x" * 89 + b"\n")
out.write(b"partial-no-newline")
out.flush()
