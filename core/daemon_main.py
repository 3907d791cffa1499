"""The daemon's entry under its first name: ``python -m corral.daemon_main``.

An older corral's ``corral update`` re-executes its daemon with this name after the new
corral is installed; the entry is :mod:`corral.daemon.main` now, and this runs it.
"""

import corral.daemon.main  # noqa: F401  (the daemon runs on import)
