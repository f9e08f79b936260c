"""The HTTP API under /api: submit, list, show, cancel, adopt and requeue export jobs.

Every route needs ``Authorization: Bearer $ADMIN_TOKEN`` (compared in constant time) and declares the query
parameters it reads (``app.platform.validation.query_args``: any other is a 400, never ignored). Errors are JSON
``{"error": ..., "detail": ...}``; the app's error handlers guarantee no stack trace leaks.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from redis.exceptions import RedisError

from app.jobs import ops, submission
from app.jobs.documents import MAX_PAGE, MAX_PAGE_SIZE, job_view
from app.platform import guess_limit
from app.platform.errors import RequestError, TooManyAttempts
from app.platform.metrics import API_AUTH
from app.platform.validation import bounded_int, query_args, validate_job_sid, validate_resource_type
from app.services import current_services as _svc

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def require_admin_token() -> None:
    """The bearer ADMIN_TOKEN, compared in constant time, unless this address has failed too often: then 429 with
    Retry-After and the token is not even compared (``app.platform.guess_limit.API_TOKEN``: the numbers and why). The
    attempt is counted before the comparison and a right token gives the count back: two Redis round trips per
    request (one while limited or refused); without Redis, 503 like every API route."""
    svc, client = _svc(), request.remote_addr
    limited = svc.auth_failures.reserve(guess_limit.API_TOKEN, client)
    if limited is not None:
        API_AUTH.labels("limited").inc()
        log.warning("api: refused, too many failed authentications", extra={"remote_addr": client})
        raise TooManyAttempts(limited.message, limited.retry_after)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = svc.settings.admin_token
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        API_AUTH.labels("refused").inc()
        log.warning("api: refused, missing or wrong token", extra={"remote_addr": client})  # never the token
        abort(401)
    svc.auth_failures.release(guess_limit.API_TOKEN, client)


def json_body(optional: bool = False) -> Any:
    """The parsed JSON body; ``optional`` allows an empty one (None). Anything else that is not JSON is a 400."""
    if optional and not request.get_data(cache=True):
        return None
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the parser goes: werkzeug only catches ValueError
        body = None
    if body is None:
        raise RequestError("body must be JSON (Content-Type: application/json)")
    return body


@bp.post("/jobs")
@query_args()
def submit_job() -> tuple[Response, int]:
    svc = _svc()
    req = submission.SubmitRequest.from_body(json_body())
    result = submission.submit(svc, req)
    views = [job_view(svc.days, j) for j in result.jobs]
    if result.error is not None:
        # Some chunks exist at Twilio and are tracked; say so rather than pretend nothing happened.
        detail = "storage unavailable: Redis is not reachable" if isinstance(result.error, RedisError) else None
        return jsonify(error="partially submitted", detail=detail or str(result.error), jobs=views), 502
    if len(views) == 1:
        return jsonify(views[0]), 201
    return jsonify(jobs=views), 201


@bp.get("/jobs")
@query_args("page", "page_size", "account", "resource_type")
def list_jobs() -> Response:
    svc = _svc()
    page = bounded_int(request.args, "page", 0, MAX_PAGE)
    size = bounded_int(request.args, "page_size", 50, MAX_PAGE_SIZE, low=1)
    account = request.args.get("account")  # SID or label: that account's jobs only (400 if not served)
    sid = svc.accounts.resolve(account).sid if account else None
    rt = request.args.get("resource_type")  # that resource type's jobs only
    rt = validate_resource_type(rt) if rt is not None else None
    jobs, total = svc.jobs.list_jobs(offset=page * size, limit=size, account_sid=sid, resource_type=rt)
    return jsonify(
        jobs=[job_view(svc.days, j) | {"days": None} for j in jobs],
        meta={"page": page, "page_size": size, "total": total, "has_more": (page + 1) * size < total},
    )


@bp.get("/jobs/<job_sid>")
@query_args()
def show_job(job_sid: str) -> Response:
    svc = _svc()
    return jsonify(job_view(svc.days, ops.require_job(svc, job_sid)))


@bp.delete("/jobs/<job_sid>")
@query_args()
def cancel_job(job_sid: str) -> Response:
    svc = _svc()
    job = ops.cancel(svc, job_sid)
    return jsonify(job_view(svc.days, job))


@bp.post("/jobs/track")
@query_args()
def track_job() -> tuple[Response, int]:
    svc = _svc()
    body = json_body()
    if not isinstance(body, dict) or set(body) - {"job_sid", "resource_type", "account"}:
        raise RequestError('body must be {"job_sid": ..., "resource_type"?: ..., "account"?: ...}')
    rt = body.get("resource_type")
    if rt is not None:
        validate_resource_type(rt)
    job = ops.adopt(svc, validate_job_sid(body.get("job_sid")), rt, body.get("account"))
    return jsonify(job_view(svc.days, job)), 201


@bp.post("/jobs/<job_sid>/refresh")
@query_args()
def refresh_job(job_sid: str) -> Response:
    """Read the job from Twilio now (``ops.refresh``): Twilio's answer at once, the days by the sync it queues."""
    svc = _svc()
    return jsonify(job_view(svc.days, ops.refresh(svc, job_sid)))


@bp.post("/jobs/<job_sid>/requeue")
@query_args()
def requeue_job(job_sid: str) -> Response:
    svc = _svc()
    body = json_body(optional=True)
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"days"}:
        raise RequestError('body must be empty (every failed day) or {"days": ["YYYY-MM-DD", ...]}')
    days = body.get("days")
    if days is not None and (not isinstance(days, list) or not days or not all(isinstance(d, str) for d in days)):
        raise RequestError("days must be a non-empty list of YYYY-MM-DD strings (omit it for every failed day)")
    requeued = ops.requeue(svc, job_sid, days)
    return jsonify(requeued=requeued, job=job_view(svc.days, ops.require_job(svc, job_sid)))
