"""Console sign-in, sessions and CSRF.

- Sign-in compares the submitted token with CONSOLE_TOKEN (or ADMIN_TOKEN) in constant time; the token is never
  stored in the session, rendered or logged.
- The session is Flask's signed cookie ``relay_console``: HttpOnly, SameSite=Strict, path ``/console``, Secure
  unless the request's host is loopback (``make run`` on http://127.0.0.1), 12 hours at most (checked by the
  server from the signature's timestamp). Its signing key is HMAC-SHA256(token, purpose): the same in every
  process without a new setting, and a new token invalidates every session.
- Every POST carries the session's CSRF token in a hidden field, compared in constant time (SameSite=Strict
  already keeps other sites' forms from sending the cookie; the token also covers same-site attackers).
- Without a session, pages redirect to the sign-in page and actions (POST) get 403.
- Failed sign-ins are limited per client address and for everyone together (``app.guess_limit``): 429
  with Retry-After, counted in ``relay_console_signins_total{outcome}`` and logged without the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Request, abort, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.wrappers import Response

from app.config import is_loopback_host
from app.console import bp
from app.context import current_services
from app.guess_limit import CONSOLE_SIGNIN, Limited
from app.metrics import CONSOLE_SIGNINS

log = logging.getLogger(__name__)

COOKIE_NAME = "relay_console"
SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
PUBLIC_ENDPOINTS = {"console.sign_in", "console.static"}
_KEY_PURPOSE = b"bulkexport-relay console session key v1"


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only under /console (other routes never pay for it), with the
    Secure flag decided per request: off only when the browser talks to a loopback host."""

    def open_session(self, app: Flask, request: Request) -> Any:
        if not request.path.startswith(bp.url_prefix or "/console"):
            return self.session_class()  # empty and never modified: nothing is sent back
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return not is_loopback_host(urlsplit(f"//{request.host}").hostname)


def console_token() -> str | None:
    settings = current_services().settings
    return settings.console_token or settings.admin_token


def configure_sessions(app: Flask) -> None:
    settings = app.extensions["relay"].settings
    token = settings.console_token or settings.admin_token
    # Without any token nobody can sign in; the random key only keeps Flask's session machinery working.
    key = hmac.new(token.encode(), _KEY_PURPOSE, hashlib.sha256).hexdigest() if token else secrets.token_hex(32)
    app.secret_key = key
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
    )


def csrf_token() -> str:
    """The session's CSRF token (made on first use; a fresh one at sign-in)."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(session[CSRF_FIELD])


def _csrf_ok() -> bool:
    sent = request.form.get(CSRF_FIELD, "")
    expected = session.get(CSRF_FIELD, "")
    return bool(expected) and hmac.compare_digest(sent.encode(), str(expected).encode())


def signed_in() -> bool:
    return session.get("signed_in") is True


@bp.before_request
def guard() -> Response | None:
    """Every console request: a session for anything but sign-in and static files, a valid CSRF token on POST."""
    if request.endpoint not in PUBLIC_ENDPOINTS and not signed_in():
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        abort(403, "sign in first: this action needs a console session")
    if request.method == "POST" and not _csrf_ok():
        log.warning("console: POST refused, missing or wrong CSRF token", extra={"path": request.path})
        abort(403, "the form's security token is missing or out of date: reload the page and try again")
    return None


@bp.after_request
def security_headers(response: Response) -> Response:
    """Nothing from elsewhere, no framing, no caching of pages that show the registry."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (no scheme, no host, no //): never an open redirect."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.overview")


def _refuse_limited(limited: Limited, next_url: str | None) -> Response:
    CONSOLE_SIGNINS.labels("limited").inc()
    log.warning(
        "console: sign-in refused, too many failed sign-ins",
        extra={"remote_addr": request.remote_addr, "everyone": limited.everyone, "retry_after": limited.retry_after},
    )
    body = render_template("console/signin.html", next_url=next_url, error=limited.message)
    return Response(body, 429, headers={"Retry-After": str(limited.retry_after)}, mimetype="text/html")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int] | str:
    next_url = request.values.get("next")
    if request.method == "GET":
        if signed_in():
            return redirect(_safe_next(next_url))
        return render_template("console/signin.html", next_url=next_url, error=None)
    failures = current_services().registry.r
    limited = CONSOLE_SIGNIN.reserve(failures, request.remote_addr)  # counted before the token is even looked at
    if limited is not None:
        return _refuse_limited(limited, next_url)
    expected = console_token()
    sent = request.form.get("token", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        CONSOLE_SIGNINS.labels("refused").inc()
        log.warning("console: sign-in refused (wrong token)", extra={"remote_addr": request.remote_addr})
        error = "That token is not the console token." if expected else "The console is off: no token is set."
        return render_template("console/signin.html", next_url=next_url, error=error), 401
    CONSOLE_SIGNIN.release(failures, request.remote_addr, forgive=True)
    CONSOLE_SIGNINS.labels("ok").inc()
    session.clear()
    session.permanent = True
    session["signed_in"] = True
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    log.info("console: signed in", extra={"remote_addr": request.remote_addr})
    return redirect(_safe_next(next_url))


@bp.post("/sign-out")
def sign_out() -> Response:
    session.clear()
    log.info("console: signed out", extra={"remote_addr": request.remote_addr})
    return redirect(url_for("console.sign_in"))
