"""The RPC wire between clients and the daemon, and the table of its commands."""
