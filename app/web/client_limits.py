"""What one client may hold of a web worker, and for how long (issue 20: slow bodies pinned workers).

The web runs gunicorn's gevent worker (deploy/gunicorn.conf.py): a connection is a greenlet, and a worker serves at
most ``worker_connections`` (1000) of them. gunicorn times the wait for a request's head (``keepalive``, 75 s) but
not its body: one client dripping the body of a public POST (``/console/sign-in``, a byte every 5 s) held its
greenlets for minutes, and a thousand of them filled the worker so that ``/livez`` timed out. Two limits:

- **A deadline for every request body** (``BufferedBodies``, WSGI middleware around the app): a body is read whole,
  within ``WEB_BODY_TIMEOUT_SECONDS`` (10 s) counted from the end of the head, before the app runs; the app then
  reads it from memory. Late → 408, too big (``WEBHOOK_MAX_BODY_BYTES``, the app's MAX_CONTENT_LENGTH, by the
  declared length before a byte is read, or while reading a chunked body) → 413. The deadline is a
  ``gevent.Timeout`` and so needs the gevent worker, the default; other worker classes buffer the body without
  one (they belong behind a buffering proxy, as the gunicorn config says). Every refusal closes the connection,
  so gunicorn does not go on draining the rest of a body it will never use. Real bodies (Twilio's form, the
  console's sign-in form, the API's JSON) are a few hundred bytes sent with the head: the deadline is generous.
- **A cap per client address** (``WEB_MAX_CONNECTIONS_PER_CLIENT``, 100 per worker; 0 turns it off), counted by
  ``app.platform.guess_limit.client_id`` (an IPv4 address, an IPv6 /64), in two places:

  - connections, by the peer's address, in the gevent worker (``deploy/gunicorn.conf.py``), when no proxy stands in
    front (``PROXY_FIX_HOPS=0``): a connection over the cap is closed as soon as it is accepted, before a byte is
    read, so unfinished heads are capped too. Behind proxies every connection comes from a proxy, so this count
    is off (counting it would cap the whole load balancer); unix-socket peers are never counted;
  - request bodies being received, by the address the app sees (the client's own behind proxies, through
    ProxyFix and ``PROXY_FIX_HOPS``; the peer's without): over the cap → 429. Behind a proxy this is the cap that
    applies; the proxy itself must bound unfinished heads (nginx and load balancers do not forward a request
    before its head is complete).

  An attacker therefore needs ``worker_connections / cap`` addresses (10, or ten IPv6 /64s) to fill a worker, and
  each of them holds a greenlet at most ``keepalive`` (a head) or the body deadline (a body). Clients sharing one
  address (a NAT) share the cap: 100 simultaneous connections is far more than a browser (6) or Twilio's
  deliveries use. Without proxies, ``PROXY_FIX_HOPS`` must stay 0; with them it must be set, or every client is
  counted under the proxy's address.

Refusals are counted (``relay_web_client_limit_refusals_total{reason}``) and logged once per client each time it
reaches the cap, not per refused connection (an attack would otherwise write a log line per connection).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.http import HTTP_STATUS_CODES

from app.platform.guess_limit import client_id
from app.platform.metrics import CLIENT_LIMITS

if TYPE_CHECKING:
    from app.platform.config import Settings

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class ClientSlots:
    """At most ``cap`` things (connections, or bodies being received) held at once per client, in one process.

    ``take`` answers the key the slot is held under (give it back with ``give_back``), or None: this client holds
    ``cap`` already. ``what`` names the things in the log line written when a client reaches the cap."""

    def __init__(self, cap: int, what: str) -> None:
        self.cap = cap
        self.what = what
        self._held: dict[str, int] = {}
        self._refusing: set[str] = set()  # clients refused since they last went below the cap (logged once)
        self._lock = threading.Lock()  # gevent's under the gevent worker; held for a dict update only

    def take(self, remote_addr: str | None) -> str | None:
        key = client_id(remote_addr)
        with self._lock:
            held = self._held.get(key, 0)
            if held >= self.cap:
                first = key not in self._refusing
                self._refusing.add(key)
            else:
                self._held[key] = held + 1
                return key
        if first:
            log.warning(
                "a client holds %d %s: refusing more until it releases some",
                self.cap,
                self.what,
                extra={"client": key, "cap": self.cap},
            )
        return None

    def give_back(self, key: str) -> None:
        with self._lock:
            held = self._held.get(key, 0) - 1
            if held > 0:
                self._held[key] = held
            else:
                self._held.pop(key, None)
            self._refusing.discard(key)

    def held(self, remote_addr: str | None) -> int:
        with self._lock:
            return self._held.get(client_id(remote_addr), 0)


def connection_slots(settings: Settings) -> ClientSlots | None:
    """The per-address connection cap for the gevent worker; None when it is off or proxies stand in front."""
    if settings.web_max_connections_per_client <= 0 or settings.proxy_fix_hops > 0:
        return None
    return ClientSlots(settings.web_max_connections_per_client, "connections")


def peer_address(addr: Any) -> str | None:
    """The IP address of a socket peer as the accept call gave it; None for a unix socket (never counted)."""
    return addr[0] if isinstance(addr, tuple) and addr and isinstance(addr[0], str) else None


def serve_capped(slots: ClientSlots | None, addr: Any, client: Any, serve: Callable[[], None]) -> None:
    """``serve()`` the connection unless its client already holds its cap of this worker's connections: then it is
    closed as soon as it is accepted, before a byte is read (deploy/gunicorn.conf.py's gevent worker calls this)."""
    remote = peer_address(addr)
    key = slots.take(remote) if slots and remote else ""
    if key is None:
        CLIENT_LIMITS.labels("connections_per_client").inc()
        client.close()
        return
    try:
        serve()
    finally:
        if key and slots:
            slots.give_back(key)


class BodyTimeout(Exception):
    """The request body did not arrive within the deadline (an Exception, so gunicorn marks the body failed)."""


class _TooLarge(Exception):
    pass


class BufferedBodies:
    """WSGI middleware: read the request body whole, within the deadline and the size limit, before ``app`` runs.

    Goes inside ProxyFix, so that ``REMOTE_ADDR`` is the client's own when proxies stand in front."""

    def __init__(self, app: WSGIApp, settings: Settings) -> None:
        self.app = app
        self.max_bytes = settings.webhook_max_body_bytes
        self.timeout_seconds = settings.web_body_timeout_seconds
        cap = settings.web_max_connections_per_client
        self.receiving = ClientSlots(cap, "request bodies being received") if cap > 0 else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        declared = _declared_length(environ)
        if declared == 0:
            return self.app(environ, start_response)
        if declared is not None and declared > self.max_bytes:
            return _refuse(environ, start_response, 413, "body_too_large", f"at most {self.max_bytes} bytes")
        slot = self.receiving.take(environ.get("REMOTE_ADDR")) if self.receiving else ""
        if slot is None:
            detail = f"at most {self.receiving.cap if self.receiving else 0} request bodies at once per client"
            return _refuse(environ, start_response, 429, "bodies_per_client", detail)
        try:
            body = self._read(environ["wsgi.input"], declared)
        except BodyTimeout:
            detail = f"the request body must arrive within {self.timeout_seconds} s"
            return _refuse(environ, start_response, 408, "body_timeout", detail)
        except _TooLarge:
            return _refuse(environ, start_response, 413, "body_too_large", f"at most {self.max_bytes} bytes")
        finally:
            if slot and self.receiving:
                self.receiving.give_back(slot)
        if declared is not None and len(body) < declared:  # the client closed before sending it all
            return _refuse(environ, start_response, 400, None, "the request body ended early")
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)

    def _read(self, stream: Any, declared: int | None) -> bytes:
        """The body: ``declared`` bytes, or a chunked one to its end (at most ``max_bytes``), within the deadline."""
        with _deadline(self.timeout_seconds):
            if declared is not None:
                return bytes(stream.read(declared))
            body = bytes(stream.read(self.max_bytes + 1))
        if len(body) > self.max_bytes:
            raise _TooLarge
        return body


def _declared_length(environ: dict[str, Any]) -> int | None:
    """The body's length: Content-Length, None for a chunked body (length unknown until its end), else 0."""
    raw = environ.get("CONTENT_LENGTH") or ""
    if raw.strip().isdigit():  # gunicorn refuses any other Content-Length itself (400)
        return int(raw)
    return None if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() else 0


def _deadline(seconds: int) -> contextlib.AbstractContextManager[Any]:
    """A gevent Timeout raising BodyTimeout when the worker is gevent's (sockets patched), else no deadline."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("socket"):
        return contextlib.nullcontext()
    import gevent

    return gevent.Timeout(seconds, BodyTimeout(f"no complete body after {seconds} s"))


def _refuse(
    environ: dict[str, Any], start_response: Callable[..., Any], status: int, reason: str | None, detail: str
) -> Iterable[bytes]:
    """Answer ``status`` as the app's errors look, and end the connection after it: the rest of the body is never
    read, and gunicorn would otherwise drain it (for as long as the client drips it) before the next request."""
    if reason:
        CLIENT_LIMITS.labels(reason).inc()
    phrase = HTTP_STATUS_CODES[status]
    payload = json.dumps({"error": phrase.lower(), "detail": detail}).encode()
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)  # later reads see the end of the stream: gunicorn closes after answering
    start_response(f"{status} {phrase}", [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]
