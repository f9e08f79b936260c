"""Cross-cutting request handling: Basic auth and injected faults on Twilio's paths, the request log, errors.

Twilio's paths are /v1 (BulkExports) and /2010-04-01 (the Accounts API). Authentication is checked
before anything else: unknown, wrong, revoked or closed credentials are 401 / 20003 "Authenticate";
a suspended account is 403 / 20005 "Account not active". Faults only hit authenticated requests; every
answer on Twilio's paths (errors included) is logged for GET /_sandbox/requests. Errors under /_sandbox
keep the control shape; everything else gets Twilio's JSON error shape.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.routes.common import TwilioError, control_error, ctx, twilio_error_response
from sandbox.scenario import ScenarioError

log = logging.getLogger("sandbox.api")

TWILIO_PREFIXES = ("/v1", "/2010-04-01")

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type, If-Match, If-Modified-Since, "
    "If-None-Match, If-Unmodified-Since, Idempotency-Key",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Expose-Headers": "ETag, Twilio-Request-Id",
}


def operation() -> str | None:
    """The Twilio operationId of this request (the endpoint name without its blueprint)."""
    return request.endpoint.rpartition(".")[2] if request.endpoint else None


def authenticate() -> Response | None:
    """Basic auth as an account (SID + token) or one of its API keys; sets ``g.account_sid``, else an error."""
    auth = request.authorization
    acct = None
    if auth is not None and auth.type == "basic" and auth.username is not None and auth.password is not None:
        acct = ctx().store.authenticate(auth.username, auth.password)
    if acct is None:
        return twilio_error_response(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
    if acct.status != "active":
        return twilio_error_response(403, 20005, f"Account not active: {acct.sid} is {acct.status}")
    g.account_sid = acct.sid
    g.api_key = auth is not None and auth.username is not None and auth.username.startswith("SK")
    return None


def twilio_surface() -> bool:
    """Requests that stand for Twilio's own API (authenticated, faults, request log): /v1 and /2010-04-01."""
    return request.path.startswith(TWILIO_PREFIXES)


def guard() -> Response | None:
    """before_request: time the request; on Twilio paths check credentials, then apply any injected fault."""
    request.environ["sandbox.started"] = time.monotonic()
    if not twilio_surface():
        return None
    refused = authenticate()
    if refused is not None:
        return refused
    fault, retry_after, slow_ms = ctx().store.take_api_fault(operation())
    request.environ["sandbox.fault"] = fault
    if slow_ms:
        time.sleep(slow_ms / 1000)
    if fault == "429":
        return twilio_error_response(429, 20429, "Too Many Requests", {"Retry-After": str(retry_after)})
    if fault == "500":
        return twilio_error_response(500, 20500, "Internal Server Error")
    if fault == "403":
        return twilio_error_response(403, 20403, "Forbidden")
    return None


def after(resp: Response) -> Response:
    """after_request: Twilio's CORS and request-id headers, and one request-log entry per Twilio request."""
    if twilio_surface():
        resp.headers.update(CORS)
        resp.headers["Twilio-Request-Id"] = "RQ" + uuid.uuid4().hex
        ctx().store.log(
            "requests",
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "operation": operation(),
                "account_sid": g.get("account_sid"),
                "status": resp.status_code,
                "fault": request.environ.get("sandbox.fault"),
                "at": datetime.now(UTC).isoformat(),
                "duration_ms": round((time.monotonic() - request.environ["sandbox.started"]) * 1000, 2),
            },
        )
    return resp


def twilio_error(exc: TwilioError) -> Response:
    return twilio_error_response(exc.status, exc.code, exc.message, exc.headers)


def scenario_error(exc: ScenarioError) -> Response:
    return control_error(str(exc))


def http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if request.path.startswith("/_sandbox"):
        resp = jsonify({"error": exc.description, "status": status})
        resp.status_code = status
        return resp
    if status == 404:
        return twilio_error_response(404, 20404, f"The requested resource {request.path} was not found")
    if status == 405:
        return twilio_error_response(405, 20004, "Method not allowed")
    return twilio_error_response(status, 20001 if status == 400 else 20500, exc.description or exc.name)


def crash(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return twilio_error_response(500, 20500, "Internal Server Error")


def install(app: Flask) -> None:
    """Register the hooks and error handlers on the app (they cover every blueprint)."""
    app.before_request(guard)
    app.after_request(after)
    app.register_error_handler(TwilioError, twilio_error)
    app.register_error_handler(ScenarioError, scenario_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, crash)
