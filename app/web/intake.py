"""Webhook intake: the completion callback Twilio sends to ``/hooks/bulkexport?token=...``.

Twilio documents no payload for this callback (one report: a form POST with ``status=completed``, sometimes
delivered 4 times; another: never delivered) and it is unconfirmed whether it is signed. So the request is only
a *hint*: it identifies the job through our own unguessable token, never through anything in its body, and all
it does is queue one sync task (deduplicated). No Twilio or S3 I/O happens here, and no URL it carries is ever
fetched.

Answers, in the order they are checked: a token that names neither a tracked job nor a submission still waiting
for Twilio's answer (or whose account is no longer served) -> 404; ``X-Twilio-Signature`` does not validate with
twilio's ``RequestValidator`` against the URL Twilio called (rebuilt from ``PUBLIC_BASE_URL`` + path + raw
query) with the owning account's primary or secondary auth token -> 403 (a missing signature is a 403 only when
``WEBHOOK_SIGNATURE=required``, or under ``auto`` once a signed delivery was seen); a submission still waiting
for Twilio's answer -> 202 (the poller takes the job); a daily export's token -> a sweep of Twilio's day list is
queued (at most one per WEBHOOK_SYNC_EVERY_SECONDS) -> 204; else the delivery is counted and a sync is queued
unless one already queued or running covers it or the job's deliveries are throttled -> 204. Redis down -> 503,
so a retrying sender retries. The token is looked up first, in one Redis round trip (``lookup_token``): an
unknown token costs nothing more (no body parsed, no HMAC); the signature needs the owning account's auth tokens,
so it is checked next, and the count, the rate limit and the sync task's status are one more round trip
(``record_delivery``) before the sync is queued.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlencode

from flask import Blueprint, Response, request
from redis.exceptions import RedisError
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import RequestEntityTooLarge

from app.feeds.daily_exports import DAILY_TARGET
from app.jobs.records import hash_token
from app.platform.metrics import WEBHOOKS
from app.platform.validation import query_args
from app.services import Services
from app.services import current_services as _svc

log = logging.getLogger(__name__)
bp = Blueprint("intake", __name__)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")
REDACTED_HEADERS = {"authorization", "cookie", "x-twilio-signature", "proxy-authorization"}
BODY_LOG_LIMIT = 2048
HOOK_MAX_BODY_BYTES = 16 * 1024  # Twilio's callbacks are a few hundred bytes; the API allows WEBHOOK_MAX_BODY_BYTES
HOOK_MAX_FORM_FIELDS = 64
WEBHOOK_SYNC_EVERY_SECONDS = 60  # at most one webhook-triggered sync per job and minute (the rest: deferred)


def called_url() -> str:
    """The URL as Twilio called it: our public base + path + the query string exactly as received."""
    base = _svc().settings.public_base_url or ""  # without it no webhook was registered (see _handle_delivery)
    query = request.query_string.decode("latin-1")
    return f"{base}{request.path}" + (f"?{query}" if query else "")


def signature_valid(signature: str, tokens: tuple[str, ...]) -> bool:
    url = called_url()
    if request.method == "GET":
        params: object = {}
    elif request.mimetype == "application/x-www-form-urlencoded":
        params = request.form  # a Werkzeug MultiDict: repeated names survive (RequestValidator uses getlist)
    elif "bodySHA256" in request.args:
        # JSON (or any raw body): Twilio signs the URL carrying bodySHA256; the validator checks the body hash.
        params = request.get_data(as_text=True)
    else:
        params = {}  # any other body is not part of the signature: only the URL is signed
    # The validator compares with a constant-time loop and tries the URL with and without the port.
    return any(RequestValidator(t).validate(url, params, signature) for t in tokens)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _load_body() -> None:
    """Read the whole body once, up front: this is where the size limit (413) applies, before any work."""
    if request.mimetype in FORM_TYPES:
        request.form  # noqa: B018 - parsed (and size-checked) once, kept on the request
    else:
        request.get_data(cache=True)


def _body_text() -> str:
    """The body as text for the log (a form as its re-encoded fields)."""
    if request.mimetype in FORM_TYPES:
        return urlencode(list(request.form.items(multi=True)))
    return request.get_data(cache=True).decode("utf-8", "replace")


def _log_request(outcome: str, job_sid: str | None) -> None:
    headers = {k: ("[redacted]" if k.lower() in REDACTED_HEADERS else v) for k, v in request.headers.items()}
    query = {k: ("[redacted]" if k == "token" else v) for k, v in request.args.items(multi=True)}
    body = _body_text()[:BODY_LOG_LIMIT]
    log.info(
        "webhook %s",
        outcome,
        extra={
            "job_sid": job_sid,
            "webhook": {
                "method": request.method,
                "content_type": request.mimetype,
                "headers": headers,
                "query": query,
                "body": body,
            },
        },
    )


def _reject(status: int, outcome: str, job_sid: str | None = None) -> Response:
    WEBHOOKS.labels(outcome).inc()
    if job_sid is None:
        # Unauthenticated noise: one short line, so anyone on the internet cannot flood the logs with bodies.
        log.info("webhook %s", outcome, extra={"webhook": {"method": request.method, "path": request.path}})
    else:
        _log_request(outcome, job_sid)
    return Response(status=status)


@bp.route("/hooks/bulkexport", methods=["GET", "POST"])
@query_args("token", "bodySHA256", strict=False)
def bulkexport_webhook() -> Response:
    """Every outcome is counted here (the app's error handlers then answer 503 / 413)."""
    try:
        return _handle_delivery(_svc())
    except RedisError:
        WEBHOOKS.labels("unavailable").inc()
        raise
    except RequestEntityTooLarge:
        WEBHOOKS.labels("too_large").inc()
        raise


def _handle_delivery(svc: Services) -> Response:
    """Token first: an unknown token costs one Redis round trip and nothing else (no body parsed, no HMAC)."""
    token = request.args.get("token", "")
    if not TOKEN_RE.fullmatch(token):
        return _reject(404, "rejected_token")
    found = svc.tokens.lookup_token(hash_token(token))
    if found.target is None and not found.pending:
        return _reject(404, "rejected_token")
    _limit_body()
    try:
        tokens = svc.accounts.get(found.account_sid).auth_tokens  # the owning account's tokens, no other's
    except LookupError:
        return _reject(404, "rejected_token")  # its account is no longer served here
    signed = _signature_acceptable(svc, found.signed_seen, tokens)
    if signed is None:
        return _reject(403, "rejected_signature", found.target)
    if found.target is None:
        # Twilio called back before its create answer reached us; the poller syncs the job once stored.
        WEBHOOKS.labels("early").inc()
        _log_request("early", None)
        return Response(status=202)
    if found.target.startswith(DAILY_TARGET):
        if signed:
            svc.tokens.mark_signed_seen()
        if not svc.tokens.webhook_rate_ok(found.target, WEBHOOK_SYNC_EVERY_SECONDS):
            WEBHOOKS.labels("throttled").inc()  # the poller sweeps anyway (SWEEP_INTERVAL_SECONDS)
            return Response(status=204)
        # A daily export's file is ready: look at Twilio's day list now (one sweep queued at a time).
        return _answer(svc.enqueuer.sweep(found.target.removeprefix(DAILY_TARGET)), found.target, first=True)
    job_sid = found.target
    delivery = svc.jobs.record_delivery(
        job_sid, svc.enqueuer.sync_key_prefix() + job_sid, signed, WEBHOOK_SYNC_EVERY_SECONDS
    )
    if not delivery.may_sync and not svc.enqueuer.is_active(delivery.sync_status):
        WEBHOOKS.labels("throttled").inc()  # the job is due for the poller when the limit ends
        log.info("webhook throttled", extra={"job_sid": job_sid})
        return Response(status=204)
    # A sync already queued or running covers this delivery (the steady state of duplicate deliveries).
    return _answer(delivery.may_sync and svc.enqueuer.sync(job_sid), job_sid, first=delivery.number == 1)


def _answer(queued: bool, target: str, first: bool) -> Response:
    outcome = "accepted" if queued else "duplicate"
    WEBHOOKS.labels(outcome).inc()
    if queued or first:
        # The full request: how we learn Twilio's real payload. A job's first delivery is logged even when a
        # poller's sync already covers it, so every job's payload is on record.
        _log_request(outcome, target)
    else:
        # Counted (metric, the job's webhooks_received) and in the access log; the line is for debugging only.
        log.debug("webhook duplicate", extra={"job_sid": target})
    return Response(status=204)


def _limit_body() -> None:
    """Webhooks are small: a far lower body and field limit than the API's, applied before anything is read."""
    request.max_content_length = min(_svc().settings.webhook_max_body_bytes, HOOK_MAX_BODY_BYTES)
    request.max_form_parts = HOOK_MAX_FORM_FIELDS
    request.max_form_memory_size = HOOK_MAX_BODY_BYTES
    _load_body()
    if request.mimetype in FORM_TYPES and len(list(request.form.items(multi=True))) > HOOK_MAX_FORM_FIELDS:
        raise RequestEntityTooLarge(f"a webhook carries at most {HOOK_MAX_FORM_FIELDS} form fields")


def _signature_acceptable(svc: Services, signed_seen: bool, tokens: tuple[str, ...]) -> bool | None:
    """True: validly signed. False: unsigned but accepted by the policy. None: refuse (403).

    ``auto`` (the default): unsigned deliveries are accepted only until this deployment has seen one validly
    signed delivery (remembered in Redis, shown by /health); Twilio signs every webhook it sends, so from then
    on an unsigned one can only be someone replaying a token read from a log. ``if-present`` keeps accepting
    unsigned ones; ``required`` never does. A present but wrong signature is always refused."""
    signature = request.headers.get("X-Twilio-Signature")
    policy = svc.settings.webhook_signature
    if signature is None or not tokens:
        # Without TWILIO_AUTH_TOKEN (API-key credentials) no signature can be checked: a signed delivery is then
        # as trustworthy as an unsigned one, and `required` is refused at start-up for that configuration.
        unsigned_ok = policy == "if-present" or (policy == "auto" and not signed_seen)
        return False if unsigned_ok else None
    return True if signature_valid(signature, tokens) else None
