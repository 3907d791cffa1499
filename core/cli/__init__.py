"""The ``corral`` command line: PM2's commands, on top of the client."""
