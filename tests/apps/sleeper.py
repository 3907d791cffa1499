"""Prints its pid, argv and selected env, then sleeps until stopped."""

import json
import os
import sys
import time

print(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:], "cwd": os.getcwd()}), flush=True)
for key in ("pm_id", "name", "NODE_APP_INSTANCE", "CORRAL_INSTANCE", "restart_time", "GREETING"):
    if key in os.environ:
        print(f"{key}={os.environ[key]}", flush=True)
while True:
    time.sleep(3600)
