"""The ``deploy`` plugin (being written)."""
