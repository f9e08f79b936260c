"""gunicorn settings for the web process (all overridable from the environment).

- workers: one per usable CPU (``WEB_CONCURRENCY`` overrides), 4 threads each (``GUNICORN_THREADS``); requests
  are short and CPU-bound (the webhook does one Redis round trip, no external I/O). gunicorn's usual 2 x CPU + 1
  is for single-threaded sync workers: with 4 threads each it oversubscribes the CPUs. Measured on 2 cores
  (bench/webhook_intake.py, 16 connections): 2 workers against 5 gave +17-20 % req/s on both /livez and the
  webhook and a webhook p99 of 15-17 ms instead of 25-28 ms. Containers should still set WEB_CONCURRENCY: the
  CPU count seen here is the host's (or the cpuset's), not a CPU quota.
- keepalive 75 s: longer than common load balancer idle timeouts (AWS ALB 60 s), so the LB never reuses a
  connection gunicorn already closed (which shows up as sporadic 502s).
- graceful_timeout: in-flight requests finish on SIGTERM before the pod goes away.
- forwarded_allow_ips: which proxies may set X-Forwarded-*; signatures do not depend on it (they use
  PUBLIC_BASE_URL), it only affects logged client addresses.
- access log: JSON, path only (``%(U)s``) — the query string carries the webhook token and is never logged.
- Prometheus multiprocess: the metrics directory is wiped at start and dead workers are marked on exit.
"""

import os
from pathlib import Path

from app.logs import logging_dict_config

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", len(os.sched_getaffinity(0))))
# gthread, not sync: the sync worker closes the connection after every response (no keep-alive at all), which
# makes a load balancer open a new connection per webhook; gthread keeps connections open for `keepalive`.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
limit_request_line = 8190
limit_request_fields = 100
accesslog = "-"
errorlog = "-"
# gunicorn >= 25.1 opens a control socket (for `gunicornc`) under $XDG_RUNTIME_DIR, else $HOME/.gunicorn/: the
# image's user has no home (/nonexistent) and a read-only root, so every start logged an ERROR. Nothing uses it.
control_socket_disable = True
access_log_format = (
    '{"remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", "status": %(s)s, "bytes": "%(B)s", '
    '"duration_us": %(D)s, "request_id": "%({x-request-id}o)s", "user_agent": "%(a)s"}'
)

logconfig_dict = logging_dict_config(
    {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    }
)


def on_starting(server):
    """Start every run with an empty Prometheus multiprocess directory (stale files would double count).

    Only prometheus-client's own ``*.db`` files are removed: a mistaken setting (``/tmp``, ``$HOME``) must not
    wipe a directory."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
