"""Attacks on the console's sessions (issue 20, items 2, 11 and 12) against the real web tier (Procfile gunicorn,
Redis): offline guessing of the token from a cookie, a copied cookie after sign-out, a session used past its
lifetime, and a Host header choosing the cookie's Secure flag. Plain HTTP: no browser is needed to attack them."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

import pytest
import requests
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer

from devstack.procs import free_port, wait_until
from tests.browser.pages import console_session
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

COOKIE = "relay_console"
OLD_KEY_PURPOSE = b"bulkexport-relay console session key v1"  # how the key was derived from the token before
FEED_FORM = {"resource_type": "Calls", "since": "2026-01-01", "enabled": "on"}


def cookie_verifier(key: str) -> URLSafeTimedSerializer:
    """Verifies a cookie exactly as the web's Flask session does, given a signing key: what a guesser would run."""
    app = Flask("guesser")
    app.secret_key = key
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    assert serializer is not None
    return serializer


def key_from_token(token: str) -> str:
    """The key the console used to derive from the token (HMAC-SHA256(token, purpose)): one guess, one check."""
    return hmac.new(token.encode(), OLD_KEY_PURPOSE, hashlib.sha256).hexdigest()


def anonymous_cookie(url: str) -> str:
    r = requests.get(f"{url}/console/sign-in", timeout=10)
    assert r.status_code == 200
    return r.cookies[COOKIE]


def as_holder_of(url: str, cookie: str, path: str = "/console/jobs") -> requests.Response:
    """A request carrying a (copied) cookie and nothing else."""
    return requests.get(f"{url}{path}", cookies={COOKIE: cookie}, allow_redirects=False, timeout=10)


def signed_in_as(response: requests.Response) -> bool:
    if response.status_code == 302:
        assert "/console/sign-in" in response.headers["Location"]
        return False
    assert response.status_code == 200, response.status_code
    return True


def test_no_cookie_verifies_a_guess_of_the_token(make_stack) -> None:
    stack = make_stack(workers=0)
    anonymous = anonymous_cookie(stack.url)  # what every visitor of the sign-in page gets
    http, _ = console_session(stack.url)
    signed = http.cookies[COOKIE]
    for cookie in (anonymous, signed):
        # the right token itself, as the old key derivation and as a raw key: neither verifies the cookie
        for guess in (ADMIN_TOKEN, "a-wrong-guess-0123456789abcdef"):
            for key in (key_from_token(guess), guess):
                with pytest.raises(BadSignature):
                    cookie_verifier(key).loads(cookie)
        _, payload = URLSafeTimedSerializer("unknown").loads_unsafe(cookie, salt="cookie-session")
        # random values, and a mark of the token that only the signing key's holder can compute
        assert set(payload) <= {"csrf_token", "sid", "tm", "_permanent"}, payload
        assert ADMIN_TOKEN not in repr(payload)


def test_the_configured_key_signs_cookies_and_rotating_it_signs_everyone_out(make_stack, tmp_path) -> None:
    first, second = secrets.token_hex(32), secrets.token_hex(32)
    stack = make_stack(workers=0, CONSOLE_SECRET_KEY=first)
    http, _ = console_session(stack.url)
    cookie = http.cookies[COOKIE]
    assert "sid" in cookie_verifier(first).loads(cookie)  # signed with CONSOLE_SECRET_KEY, nothing else
    assert signed_in_as(as_holder_of(stack.url, cookie))
    # The same deployment (same Redis, same sessions) after the key is rotated: that cookie signs nobody in.
    rotated = make_stack(workers=0, CONSOLE_SECRET_KEY=second, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom2"))
    assert not signed_in_as(as_holder_of(rotated.url, cookie))
    assert signed_in_as(as_holder_of(stack.url, cookie))  # the session itself was live: the key made the difference
    assert ADMIN_TOKEN not in repr(cookie_verifier(second).loads(anonymous_cookie(rotated.url)))


def test_a_new_console_token_signs_everyone_out(make_stack, tmp_path) -> None:
    stack = make_stack(workers=0)
    http, _ = console_session(stack.url)
    cookie = http.cookies[COOKIE]
    # The same deployment (same Redis: same signing key, same sessions) after CONSOLE_TOKEN is set
    new_token = "a-new-console-token-0123456789"
    rotated = make_stack(workers=0, CONSOLE_TOKEN=new_token, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom2"))
    assert not signed_in_as(as_holder_of(rotated.url, cookie))
    assert signed_in_as(as_holder_of(stack.url, cookie))  # the old token's replica: still signed in
    fresh, _ = console_session(rotated.url, token=new_token)
    assert signed_in_as(as_holder_of(rotated.url, fresh.cookies[COOKIE]))


def test_replicas_without_a_configured_key_agree_on_the_generated_one(make_stack, tmp_path) -> None:
    one = make_stack(workers=0)
    two = make_stack(workers=0, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom2"))
    http, _ = console_session(one.url)
    assert signed_in_as(as_holder_of(two.url, http.cookies[COOKIE]))  # signed by one, accepted by the other
    assert as_holder_of(one.url, anonymous_cookie(two.url), "/console/sign-in").status_code == 200


def test_a_copied_cookie_stops_working_at_sign_out(make_stack) -> None:
    stack = make_stack(workers=0)
    http, csrf = console_session(stack.url)
    copied = http.cookies[COOKIE]
    assert signed_in_as(as_holder_of(stack.url, copied))
    out = http.post(f"{stack.url}/console/sign-out", data={"csrf_token": csrf}, timeout=10)
    assert out.ok and "/console/sign-in" in out.url
    assert not signed_in_as(as_holder_of(stack.url, copied))
    forged = requests.post(
        f"{stack.url}/console/feeds",
        data=FEED_FORM | {"csrf_token": csrf},
        cookies={COOKIE: copied},
        allow_redirects=False,
        timeout=10,
    )
    assert forged.status_code == 403 and "sign in first" in forged.text
    assert stack.api("GET", "/api/feeds").json()["feeds"] == []
    console_session(stack.url)  # signing in again makes a new session; the copied one stays dead
    assert not signed_in_as(as_holder_of(stack.url, copied))


def test_a_session_ends_after_its_lifetime_however_busy(make_stack, calendar) -> None:
    stack = make_stack(workers=0, CONSOLE_SESSION_HOURS="12", **calendar.env())
    http, _ = console_session(stack.url)
    cookie = http.cookies[COOKIE]
    for _hour in range(11):  # used every hour: never re-issued, never extended
        calendar.advance_seconds(3600)
        page = as_holder_of(stack.url, cookie)
        assert signed_in_as(page)
        assert COOKIE not in page.headers.get("Set-Cookie", "")
    calendar.advance_seconds(2 * 3600)  # 13 h after sign-in
    wait_until(lambda: not signed_in_as(as_holder_of(stack.url, cookie)), timeout=10, what="the session to end")
    refused = requests.post(
        f"{stack.url}/console/feeds", data=FEED_FORM, cookies={COOKIE: cookie}, allow_redirects=False, timeout=10
    )
    assert refused.status_code == 403


def set_cookie(url: str, **headers: Any) -> str:
    r = requests.get(f"{url}/console/sign-in", headers=headers, timeout=10)
    return str(r.headers["Set-Cookie"])


def test_the_secure_flag_follows_configuration_not_the_host_header(make_stack, tmp_path) -> None:
    https = make_stack(workers=0, PUBLIC_BASE_URL="https://relay.example.com")
    port = https.url.rsplit(":", 1)[1]
    for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", "[::1]"):
        cookie = set_cookie(https.url, Host=host)  # a proxy forwarding a loopback Host header
        assert re.search(r";\s*Secure", cookie), (host, cookie)
    forced = make_stack(workers=0, CONSOLE_COOKIE_SECURE="true", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "p2"))
    assert re.search(r";\s*Secure", set_cookie(forced.url))  # http loopback, but configured Secure


def test_without_redis_the_console_answers_503_and_never_falls_back_to_a_token_derived_key(make_stack) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: Redis is down from the start
    stack = make_stack(workers=0, REDIS_URL=nowhere)
    for path in ("/console/sign-in", "/console/jobs"):
        page = requests.get(f"{stack.url}{path}", allow_redirects=False, timeout=30)
        assert page.status_code == 503 and "Redis is not reachable" in page.text, (path, page.status_code)
        assert COOKIE not in page.headers.get("Set-Cookie", "")  # no cookie signed with anything else
    assert requests.get(f"{stack.url}/console/static/console.css", timeout=30).status_code == 200
