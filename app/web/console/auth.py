"""Console sign-in, sessions and CSRF.

- Sign-in compares the submitted token with CONSOLE_TOKEN (or ADMIN_TOKEN) in constant time; the token is never
  stored in the session, rendered or logged.
- The session is Flask's signed cookie ``relay_console``: HttpOnly, SameSite=Strict, path ``/console``, Secure as
  configured (CONSOLE_COOKIE_SECURE; never decided from the request's Host, which a client or proxy chooses). Its
  signing key is random and a sign-in is a server-side session with an absolute end (``app.web.console.sessions``:
  why, and the Redis keys). The cookie is sent again only when its content changes, never on every request.
- Every POST carries the session's CSRF token in a hidden field, compared in constant time (SameSite=Strict
  already keeps other sites' forms from sending the cookie; the token also covers same-site attackers).
- Without a session, pages redirect to the sign-in page and actions (POST) get 403.
- Failed sign-ins are limited per client address and for everyone together (``app.platform.guess_limit``): 429
  with Retry-After, counted in ``relay_console_signins_total{outcome}`` and logged without the token.
- Without Redis (which holds the signing key unless CONSOLE_SECRET_KEY is set, and the sessions) every console
  page but the static files answers 503.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from datetime import timedelta
from typing import Any

import redis
from flask import Flask, Request, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from itsdangerous import URLSafeTimedSerializer
from werkzeug.wrappers import Response

import app.web.console.sessions as sessions
from app.platform.guess_limit import CONSOLE_SIGNIN, Limited
from app.platform.metrics import CONSOLE_SIGNINS
from app.services import current_services
from app.web.console.blueprint import bp

log = logging.getLogger(__name__)

COOKIE_NAME = "relay_console"
CSRF_FIELD = "csrf_token"
SESSIONS = "relay_console_sessions"  # the app's extension holding the SessionStore
SESSION_ID = "sid"  # the server-side session's id, in the signed cookie (app.web.console.sessions)
MARK_FIELD = "tm"  # which token signed the session in (sessions.token_mark): a new token signs everyone out
PUBLIC_ENDPOINTS = {"console.sign_in", "console.static"}
PREFIX = bp.url_prefix or "/console"


class UnavailableSession(SecureCookieSession):
    """What a console request gets while Redis (holding the signing key) is unreachable: empty, never saved;
    ``guard`` answers 503."""


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only under /console (other routes never pay for it), signed with the
    key of ``app.web.console.sessions``, Secure as configured."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith(PREFIX) or request.path.startswith(f"{PREFIX}/static/"):
            return self.session_class()  # empty and never modified: nothing is sent back
        try:
            return super().open_session(app, request)
        except redis.RedisError as exc:
            log.error("console: the session key is unavailable (Redis): %s", exc)
            return UnavailableSession()

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        if not isinstance(session, UnavailableSession):
            super().save_session(app, session, response)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(
            signing_key(),
            salt=self.salt,
            serializer=self.serializer,
            signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
        )

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.extensions["relay"].settings.console.cookie_secure)


def session_store() -> sessions.SessionStore:
    """The console's sessions (built by ``configure_sessions`` on Services' ``console_redis``)."""
    store: sessions.SessionStore = current_app.extensions[SESSIONS]
    return store


def signing_key() -> str:
    """The cookies' signing key, read once per request (opening and saving the session share it)."""
    key: str | None = g.get("console_signing_key")
    if key is None:
        svc = current_services()
        key = g.console_signing_key = session_store().signing_key(svc.settings.console.secret_key)
    return key


def console_token() -> str | None:
    settings = current_services().settings
    return settings.console_token or settings.admin_token


def configure_sessions(app: Flask) -> None:
    settings = app.extensions["relay"].settings
    app.extensions[SESSIONS] = sessions.SessionStore(app.extensions["relay"].console_redis)
    app.session_interface = ConsoleSessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_PATH=PREFIX,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_REFRESH_EACH_REQUEST=False,  # no sliding: the server-side session ends when it ends
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.console.session_hours),
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
    """The cookie names a live server-side session, signed in with the console token configured now (one Redis
    read per request, none without a session id). Cached for the request."""
    known: bool | None = g.get("console_signed_in")
    if known is None:
        g.console_signed_in = False  # until known: a page rendered after a Redis error shows no session
        known = g.console_signed_in = _session_is_current()
    return known


def _session_is_current() -> bool:
    token, mark = console_token(), session.get(MARK_FIELD)
    if not token or not isinstance(mark, str):
        return False
    if not hmac.compare_digest(mark, sessions.token_mark(signing_key(), token)):
        return False  # signed in with a token that has been changed since
    return session_store().is_live(session.get(SESSION_ID))


@bp.before_request
def guard() -> Response | None:
    """Every console request: a session for anything but sign-in and static files, a valid CSRF token on POST."""
    if request.endpoint == "console.static":
        return None
    if isinstance(session, UnavailableSession):
        raise redis.ConnectionError("the console's session key is in Redis, which is unavailable")
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
    svc = current_services()
    # counted before the token is even looked at
    limited = svc.auth_failures.reserve(CONSOLE_SIGNIN, request.remote_addr)
    if limited is not None:
        return _refuse_limited(limited, next_url)
    expected = console_token()
    sent = request.form.get("token", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        CONSOLE_SIGNINS.labels("refused").inc()
        log.warning("console: sign-in refused (wrong token)", extra={"remote_addr": request.remote_addr})
        error = "That token is not the console token." if expected else "The console is off: no token is set."
        return render_template("console/signin.html", next_url=next_url, error=error), 401
    svc.auth_failures.release(CONSOLE_SIGNIN, request.remote_addr, forgive=True)
    CONSOLE_SIGNINS.labels("ok").inc()
    session_store().end(session.get(SESSION_ID))  # a session this browser had before: a fresh id, not that one
    session.clear()
    session.permanent = True
    session[SESSION_ID] = session_store().start(svc.settings.console.session_hours)
    session[MARK_FIELD] = sessions.token_mark(signing_key(), expected)
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    log.info("console: signed in", extra={"remote_addr": request.remote_addr})
    return redirect(_safe_next(next_url))


@bp.post("/sign-out")
def sign_out() -> Response:
    session_store().end(session.get(SESSION_ID))  # copies of the cookie stop working too
    session.clear()
    log.info("console: signed out", extra={"remote_addr": request.remote_addr})
    return redirect(url_for("console.sign_in"))
