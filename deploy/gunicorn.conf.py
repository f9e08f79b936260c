"""gunicorn settings for the web process (all overridable from the environment).

- worker class gevent (``GUNICORN_WORKER_CLASS``), because the relay faces the internet through load balancers
  that need not buffer requests: a thread or process per connection is held for as long as a client takes to
  send its request. With the former gthread class (2 workers x 4 threads), 200 connections dripping a body at one
  byte a second (or never finishing their headers) left ``/livez``, ``/readyz`` and the webhook unanswered
  (tests/e2e/test_slow_clients.py, issue 12): a liveness probe would have restarted a healthy pod. gunicorn's
  docs say the same: sync/threaded workers belong behind a buffering proxy, or use an async worker. With
  gevent a waiting connection is a greenlet (a few KiB), not a thread. Everything the web does blocks only on
  sockets (redis-py, requests for Twilio, botocore for the /health S3 probe), which ``monkey.patch_all()`` (done
  by the worker before the app is imported) makes cooperative; locks made after it are gevent's.
  Against gthread, side by side (``python -m bench.webhook_intake --compare-gthread``, bench/README.md): +18 %
  webhook req/s on a mostly idle machine, less when other processes take the CPU (a single-threaded worker
  gets a smaller share next to them; a container's own CPU share does not have that competition).
- worker_connections 1000 per worker (``GUNICORN_WORKER_CONNECTIONS``): what an attacker must hold open, per
  worker, to make new connections wait in the listen backlog. The open-files soft limit is raised at start to
  cover it (container runtimes often start processes at 1024). Redis connections do not grow with it: the app's
  pools are capped (app/services.py), so a burst of requests queues for a connection instead of failing.
- A request's head must arrive within ``keepalive`` seconds (gunicorn's async workers time that wait), so idle
  connections and unfinished headers are dropped after 75 s. gunicorn does not time a body: the app reads every
  body whole within ``WEB_BODY_TIMEOUT_SECONDS`` (408 after), and one client address holds at most
  ``WEB_MAX_CONNECTIONS_PER_CLIENT`` connections of a worker (closed at accept beyond; off behind proxies,
  ``PROXY_FIX_HOPS`` > 0, where the app caps each client's bodies instead): app/web/client_limits.py, issue 20.
  Before, 1,000 connections dripping a sign-in body filled a worker and /livez timed out. A buffering proxy in
  front (nginx, an ALB) still adds request timeouts and per-client limits.
- workers: one per usable CPU (``WEB_CONCURRENCY`` overrides). Requests are short and CPU-bound (the webhook does
  one Redis round trip) and a gevent worker uses one core, so more processes than cores only adds switching.
  Containers should still set WEB_CONCURRENCY: the CPU count seen here is the host's (or the cpuset's), not a
  CPU quota. (``GUNICORN_THREADS`` applies only if the worker class is set back to gthread.)
- keepalive 75 s: longer than common load balancer idle timeouts (AWS ALB 60 s), so the LB never reuses a
  connection gunicorn already closed (which shows up as sporadic 502s).
- graceful_timeout: in-flight requests finish on SIGTERM before the pod goes away. Connections idling between
  requests (a load balancer's keep-alive pool) are closed at once on SIGTERM, as gthread does; gunicorn's own
  gevent worker would wait for them until graceful_timeout.
- forwarded_allow_ips: which proxies may set X-Forwarded-*; signatures do not depend on it (they use
  PUBLIC_BASE_URL), it only affects logged client addresses.
- access log: JSON, path only (``%(U)s``) — the query string carries the webhook token and is never logged.
- Prometheus multiprocess: the metrics directory is wiped at start and dead workers are marked on exit.
"""

import contextlib
import gc
import os
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.platform.logs import logging_dict_config

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", len(os.sched_getaffinity(0))))


def _gevent_worker() -> type:
    """gunicorn's gevent worker, except that SIGTERM closes connections waiting for a request head at once, that
    a connection yields to the others between two requests, and that one client address may hold at most
    ``WEB_MAX_CONNECTIONS_PER_CLIENT`` connections (app/web/client_limits.py).

    gunicorn's gevent worker times each wait for a request head with ``timeout_ctx()`` (``keepalive`` seconds) and,
    on SIGTERM, waits for every connection to finish, idle keep-alive ones included: with a load balancer holding
    its pool open, every stop took the whole graceful_timeout. Here a stop ends those waits (the timeout is thrown
    in early: gunicorn then closes the connection as after a keep-alive timeout); requests in progress finish.
    Defined in a function so that gevent is imported only when this worker class is used."""
    import gevent
    from gunicorn.workers.ggevent import GeventWorker

    class RelayGeventWorker(GeventWorker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.waiting: dict[Any, gevent.Timeout] = {}
            self.connections: Any = None  # app.web.client_limits.ClientSlots, set in run() once the app is loaded

        @contextlib.contextmanager
        def timeout_ctx(self) -> Iterator[None]:
            # Round robin: the other connections' greenlets run before this one reads its next request. gevent's
            # recv returns at once when data is already there, so a client that answers within microseconds kept
            # its greenlet running and starved the others (/livez p99 200-300 ms against 18-30 ms with this).
            gevent.sleep(0)
            # After SIGTERM a connection accepted in the last moment still gets a second to send its request.
            wait = gevent.Timeout(self.cfg.keepalive if self.alive else 1, False)
            me = gevent.getcurrent()
            self.waiting[me] = wait
            try:
                with wait:
                    yield
            finally:
                self.waiting.pop(me, None)

        def run(self) -> None:
            # The app is loaded by now: the cap comes from its validated settings (app/web/client_limits.py).
            from app.web.client_limits import connection_slots

            self.connections = connection_slots(self.wsgi.extensions["relay"].settings)
            super().run()

        def handle(self, listener: Any, client: Any, addr: Any) -> None:
            from app.web.client_limits import serve_capped  # at most WEB_MAX_CONNECTIONS_PER_CLIENT per address

            serve_capped(
                self.connections, addr, client, lambda: super(RelayGeventWorker, self).handle(listener, client, addr)
            )

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            gevent.spawn(self.close_waiting)  # not from the signal handler

        def close_waiting(self) -> None:
            for greenlet, wait in list(self.waiting.items()):
                greenlet.kill(wait, block=False)

    return RelayGeventWorker


_worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gevent")
worker_class: Any = _gevent_worker if _worker_class == "gevent" else _worker_class
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))  # gthread only
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
    wipe a directory. Also raises the open-files limit for ``worker_connections`` (the workers inherit it)."""
    _raise_open_files_limit(worker_connections + 200)  # + Redis, S3, log and metrics files
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for stale in Path(path).glob("*.db"):
            stale.unlink(missing_ok=True)


def _raise_open_files_limit(wanted: int) -> None:
    """Each connection is a file descriptor: raise the soft limit toward ``wanted`` (never above the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


def post_worker_init(worker):
    """Move everything the app allocated at start-up to the permanent generation (``gc.freeze``): full collections
    then skip those ~40-80k objects. Each one used to pause every greenlet of the worker for 60-235 ms; frozen,
    2-7 ms (bench/README.md, ``bench.webhook_intake --gc-probe on|nofreeze``)."""
    gc.collect()  # start-up garbage is freed, not frozen for ever
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
