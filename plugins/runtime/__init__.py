"""The ``runtime`` plugin (being written)."""
