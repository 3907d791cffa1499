"""Closes its stdin at once, then stays alive: a line sent to it has no reader."""

import os
import threading

os.close(0)
print("closed", flush=True)
threading.Event().wait()
