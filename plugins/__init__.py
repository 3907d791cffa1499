"""First-party corral plugins, installed as ``corral.plugins``.

Each feature beyond the process lifecycle is one module here, registered
under the ``corral`` entry-point group in ``pyproject.toml``. None has landed
yet: the core loads whatever is installed.
"""
