"""A background worker: does a unit of work every second and says so."""

import os
import time

n = 0
while True:
    n += 1
    print(f"worker {os.environ.get('NODE_APP_INSTANCE', '0')}: job {n} done", flush=True)
    time.sleep(1)
