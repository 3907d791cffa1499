"""Copy a file of numbered lines to stdout as fast as the pipe takes it, then sleep.

The lines are prepared by the benchmark beforehand, so the time measured is the
process manager's log path (pipe -> daemon -> file), not the cost of formatting.
"""

import os
import sys
import time

CHUNK = 1 << 16


def copy_to_stdout(path: str) -> None:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view) :]


if __name__ == "__main__":
    copy_to_stdout(sys.argv[1])
    while True:
        time.sleep(3600)
