"""The least a supervisor can do: spawn ARGV, wait for it to die, spawn it again.

The subject of bench/restart_floor.py: no event loop, no state, no logs, no
policy; a blocking ``waitpid`` and ``posix_spawn`` (no fork of a large parent).
Killed with SIGKILL by the script that started it.
"""

import os
import sys

argv = sys.argv[1:]
while True:
    pid = os.posix_spawn(argv[0], argv, os.environ)
    os.waitpid(pid, 0)
