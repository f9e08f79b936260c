"""Servers started for tests, ``make demo`` and bench: the local stack, outside tests/ so anything may use it.

Dev-only: the image never contains this package (.dockerignore keeps it out). Modules:

- procs: the one process supervisor (``ManagedProcess``: own process group, log file, readiness polling with a
  deadline, group kill, atexit cleanup) and ``wait_until``/``free_port``.
- redis_server: a real redis-server on a free loopback port.
- s3_server: S3 servers: SeaweedFS (``SeaweedS3Server``, the default) and moto (``MotoS3Server``, TLS + write counts).
- sandbox_process: the Twilio BulkExports sandbox (``sandbox/``) as a process, with its control API.
- relay: the relay's own process types launched as the Procfile declares them, and their environment.
- stack: ``local_stack``, everything above wired together for the demo and the benchmarks.
- calendar: the sandbox's simulated calendar and the relay's clock (``RELAY_CLOCK_OFFSET_FILE``) moved together.
"""
