"""The `relay` command: one command set that runs against the HTTP API (--url) or in-process."""
