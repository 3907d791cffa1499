"""The daemon: its kernel (loop, signals, state file, recovery) and the commands it serves."""
