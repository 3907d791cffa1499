"""Exits at once with the code given as argv[1] (default 1)."""

import sys

print("crashing", flush=True)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
