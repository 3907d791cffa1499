"""Starts a grandchild (a sleeping shell) and then sleeps; SIGINT ends both by default."""

import subprocess
import sys
import time

child = subprocess.Popen(["sleep", "3600"])
print(f"grandchild={child.pid}", flush=True)
if len(sys.argv) > 1 and sys.argv[1] == "exit":
    sys.exit(0)
while True:
    time.sleep(3600)
