"""Completion webhooks, signed the way Twilio signs webhooks (X-Twilio-Signature, HMAC-SHA1 of the URL).

Twilio documents nothing about the BulkExport callback; the only report says it is form data with
``status=completed`` and that it may come several times or not at all. So the payload is
``status=completed`` plus configurable extra params, and ``copies``/``drop`` model duplicates and loss.
The same sender delivers job webhooks and daily auto-export webhooks (same payload; the daily ones
follow the scenario's ``daily_webhook``). Each is signed with the current auth token of the account that
owns the job or the configuration, read when the request is built.

Signing, per twilio-python's RequestValidator:
- POST form: sign(url, form params).
- GET: params go into the query string; sign(full url, {}).
- JSON body mode: ``bodySHA256=<hex sha256(body)>`` is appended to the query; sign(that url, {}).
Deliveries run on a thread pool, never raise, and retry once on a connection error or timeout
(Twilio's default connection policy: 5 s connect, 15 s read, 1 retry).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urldefrag, urlencode

import requests
from twilio.request_validator import RequestValidator

from sandbox.state import Store, WebhookCall

log = logging.getLogger("sandbox.webhooks")

USER_AGENT = "TwilioProxy/1.1"


@dataclass(frozen=True)
class OutgoingWebhook:
    """One HTTP request exactly as it will be sent."""

    url: str
    method: str
    headers: dict[str, str]
    body: bytes | None
    params: dict[str, str]
    mode: str


def _join_query(url: str, query: str) -> str:
    if not query:
        return url
    return url + ("&" if "?" in url else "?") + query


def build_request(call: WebhookCall, auth_token: str, idempotency_token: str) -> OutgoingWebhook:
    """Payload, URL and signature for one delivery (pure, so tests can check it directly)."""
    cfg = call.config
    url, _fragment = urldefrag(call.url)  # connection-override fragments are never sent
    method = call.method.upper()
    params = {"status": "completed", **dict(cfg.extra_params)}
    validator = RequestValidator(auth_token)
    headers = {"User-Agent": USER_AGENT, "I-Twilio-Idempotency-Token": idempotency_token}
    body: bytes | None
    if cfg.body == "json":
        body = json.dumps(params, separators=(",", ":")).encode()
        url = _join_query(url, "bodySHA256=" + hashlib.sha256(body).hexdigest())
        signature = validator.compute_signature(url, {})
        headers["Content-Type"] = "application/json"
        mode = "json"
    elif method == "GET":
        url = _join_query(url, urlencode(params))
        body = None
        signature = validator.compute_signature(url, {})
        mode = "query"
    else:
        body = urlencode(params).encode()
        signature = validator.compute_signature(url, params)
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        mode = "form"
    if cfg.sign:
        headers["X-Twilio-Signature"] = signature
    return OutgoingWebhook(url=url, method=method, headers=headers, body=body, params=params, mode=mode)


class Notifier:
    """Delivers webhooks in the background and records every attempt in the store's delivery log."""

    def __init__(
        self,
        store: Store,
        auth_token: str,
        *,
        workers: int = 16,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
    ) -> None:
        self._store = store
        self._auth_token = auth_token
        self._timeouts = (connect_timeout, read_timeout)
        # Daemon workers (not a ThreadPoolExecutor, whose threads are joined at exit): a delivery stuck
        # in a 15 s read must not delay SIGTERM shutdown.
        self._queue: queue.Queue[WebhookCall | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._work, name=f"webhook-{i}", daemon=True) for i in range(workers)]
        for t in self._workers:
            t.start()

    def submit(self, call: WebhookCall) -> None:
        if call.config.drop:
            self._store.log("deliveries", {**self._base(call), "dropped": True, "copy": 0, "attempt": 0})
            log.info("webhook for %s dropped by scenario", call.job_sid or f"daily {call.resource_type} {call.day}")
            return
        self._queue.put(call)

    def shutdown(self) -> None:
        for _ in self._workers:
            self._queue.put(None)

    def _work(self) -> None:
        while (call := self._queue.get()) is not None:
            self._deliver_all(call)

    @staticmethod
    def _base(call: WebhookCall) -> dict[str, Any]:
        return {
            "kind": call.kind,
            "account_sid": call.account_sid,
            "job_sid": call.job_sid,
            "day": call.day,
            "resource_type": call.resource_type,
            "reason": call.reason,
            "webhook_url": call.url,
            "method": call.method.upper(),
            "dropped": False,
        }

    def _deliver_all(self, call: WebhookCall) -> None:
        token = str(uuid.uuid4())
        for copy in range(1, call.config.copies + 1):
            try:
                self._deliver(call, copy, token)
            except Exception:  # a bug here must never kill the pool thread silently
                log.exception("webhook delivery for %s crashed", call.job_sid)

    def _signing_token(self, call: WebhookCall) -> str:
        """The owning account's current auth token (the default account's when the call names none)."""
        return (self._store.signing_token(call.account_sid) if call.account_sid else None) or self._auth_token

    def _deliver(self, call: WebhookCall, copy: int, token: str) -> None:
        out = build_request(call, self._signing_token(call), token)
        for attempt in (1, 2):
            entry: dict[str, Any] = {
                **self._base(call),
                "copy": copy,
                "attempt": attempt,
                "url": out.url,
                "mode": out.mode,
                "params": out.params,
                "headers": out.headers,
                "body": out.body.decode() if out.body is not None else None,
                "at": datetime.now(UTC).isoformat(),
                "status_code": None,
                "error": None,
                "ok": False,
            }
            try:
                resp = requests.request(
                    out.method,
                    out.url,
                    data=out.body,
                    headers=out.headers,
                    timeout=self._timeouts,
                    allow_redirects=False,
                )
                entry.update(status_code=resp.status_code, ok=200 <= resp.status_code < 300)
                self._store.log("deliveries", entry)
                log.info("webhook %s %s -> %s (copy %d)", out.method, out.url, resp.status_code, copy)
                return
            except (requests.ConnectionError, requests.Timeout) as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                self._store.log("deliveries", entry)
                log.info("webhook %s %s failed (attempt %d): %s", out.method, out.url, attempt, exc)
            except requests.RequestException as exc:  # e.g. an invalid URL: retrying cannot help
                entry["error"] = f"{type(exc).__name__}: {exc}"
                self._store.log("deliveries", entry)
                return
