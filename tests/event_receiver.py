"""A Standard Webhooks receiver on loopback, as a subscriber of the relay's outbound events would write one.

It verifies every delivery with the ``standardwebhooks`` library (401 if that fails), answers 500 to the first
``fail_first`` attempts of each webhook-id (so the relay has to retry), then 200, and deduplicates on webhook-id:
``events`` holds each event once, ``attempts`` every delivery as received. ``redirect_to`` makes it answer 307 to
that URL instead (a delivery must not follow it).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Attempt:
    webhook_id: str
    timestamp: str
    signature: str
    body: bytes
    verified: bool
    status: int
    headers: dict[str, str]


class EventReceiver:
    def __init__(self, secret: str, fail_first: int = 0, redirect_to: str | None = None) -> None:
        self.webhook = Webhook(secret)
        self.fail_first, self.redirect_to = fail_first, redirect_to
        self.attempts: list[Attempt] = []
        self.events: dict[str, dict[str, Any]] = {}  # webhook-id -> verified payload, first accepted delivery
        self._tries: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/relay-events"
        self._thread = threading.Thread(target=self.server.serve_forever, name="event-receiver", daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, extra = receiver.receive(raw, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def receive(self, raw: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        try:
            payload = self.webhook.verify(raw, headers)
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        wid = headers.get("webhook-id", "")
        with self._lock:
            self._tries[wid] += 1
            if not verified:
                status, extra = 401, {}
            elif self.redirect_to:
                status, extra = 307, {"location": self.redirect_to}
            elif self._tries[wid] <= self.fail_first:
                status, extra = 500, {}
            else:
                status, extra = 200, {}
                self.events.setdefault(wid, payload)  # a redelivery of an id already seen is a duplicate: dropped
            sig, stamp = headers.get("webhook-signature", ""), headers.get("webhook-timestamp", "")
            self.attempts.append(Attempt(wid, stamp, sig, raw, verified, status, headers))
        return status, extra

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events.values() if e["type"] == event_type]

    def __enter__(self) -> EventReceiver:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.server.shutdown()
        self.server.server_close()
