"""Sign-in, sessions and CSRF of the console, in a real browser against the real web tier."""

from __future__ import annotations

import re

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.browser.pages import console_session, flash, h1, sign_in, wait_for
from tests.conftest import ADMIN_TOKEN

pytestmark = pytest.mark.e2e

JOB = "JS" + "0" * 32


def test_requests_without_a_session_are_refused(make_stack):
    stack = make_stack(workers=0)
    page = requests.get(f"{stack.url}/console/jobs", allow_redirects=False, timeout=10)
    assert page.status_code == 302
    assert page.headers["Location"].endswith("/console/sign-in?next=/console/jobs")
    for path, form in (
        (f"/console/jobs/{JOB}/cancel", {}),
        ("/console/feeds", {"resource_type": "Calls", "since": "2026-01-01", "enabled": "on"}),
        ("/console/sign-out", {}),
    ):
        r = requests.post(f"{stack.url}{path}", data=form, allow_redirects=False, timeout=10)
        assert r.status_code == 403, (path, r.status_code)
        assert "sign in first" in r.text
    assert stack.api("GET", "/api/feeds").json()["feeds"] == []  # nothing was stored


def test_a_wrong_csrf_token_is_refused(make_stack):
    stack = make_stack(workers=0)
    http, csrf = console_session(stack.url)
    form = {"resource_type": "Calls", "since": "2026-01-01", "enabled": "on"}
    for token in ("", "forged", csrf[:-1]):
        r = http.post(f"{stack.url}/console/feeds", data=form | {"csrf_token": token}, timeout=10)
        assert r.status_code == 403 and "security token" in r.text
    assert stack.api("GET", "/api/feeds").json()["feeds"] == []
    r = http.post(f"{stack.url}/console/feeds", data=form | {"csrf_token": csrf}, timeout=10)
    assert r.status_code == 200 and stack.api("GET", "/api/feeds").json()["feeds"][0]["since"] == "2026-01-01"


def test_session_cookie_flags(make_stack):
    stack = make_stack(workers=0)
    loopback = requests.get(f"{stack.url}/console/sign-in", timeout=10).headers["Set-Cookie"]
    assert loopback.startswith("relay_console=")
    assert "HttpOnly" in loopback and "SameSite=Strict" in loopback and "Path=/console" in loopback
    assert "Secure" not in loopback  # PUBLIC_BASE_URL is http://127.0.0.1: a Secure cookie would never come back
    # Decided by configuration, not by the Host header (tests/browser/test_console_sessions.py: the other way round)
    elsewhere = requests.get(f"{stack.url}/console/sign-in", headers={"Host": "relay.example.com"}, timeout=10)
    assert "Secure" not in elsewhere.headers["Set-Cookie"]
    assert "relay_console" not in requests.get(f"{stack.url}/livez", timeout=10).headers.get("Set-Cookie", "")


def test_sign_in_sign_out_and_a_wrong_csrf_token_in_the_browser(make_stack, browser, screenshot):
    stack = make_stack(workers=0)
    browser.get(f"{stack.url}/console/jobs")
    assert "/console/sign-in" in browser.current_url
    screenshot("signin")
    field = browser.find_element(By.ID, "token")
    field.send_keys("not-the-token-at-all")
    field.submit()
    wait_for(browser, lambda d: "not the console token" in flash(d), "the refusal")
    assert browser.find_element(By.ID, "token").get_attribute("aria-invalid") == "true"

    sign_in(browser, stack.url, path="/console/jobs")
    assert browser.current_url.endswith("/console/jobs") and h1(browser) == "Jobs"
    cookie = browser.get_cookie("relay_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    for path in ("/console/", "/console/jobs", "/console/feeds"):
        browser.get(f"{stack.url}{path}")
        assert ADMIN_TOKEN not in browser.page_source
        assert not re.search(r"https?://(?!127\.0\.0\.1)", browser.page_source)  # nothing from elsewhere

    # A form whose CSRF token was tampered with is refused, and nothing is stored.
    browser.get(f"{stack.url}/console/feeds")
    browser.find_element(By.ID, "f-since").send_keys("01012026")
    browser.execute_script("document.querySelector('.feed-form input[name=csrf_token]').value = 'forged'")
    browser.find_element(By.CSS_SELECTOR, ".feed-form button[type=submit]").click()
    wait_for(browser, lambda d: "security token" in d.page_source, "the CSRF refusal")
    assert h1(browser) == "Forbidden"
    screenshot("forbidden")
    assert stack.api("GET", "/api/feeds").json()["feeds"] == []

    browser.get(f"{stack.url}/console/")
    browser.find_element(By.CSS_SELECTOR, ".session button").click()
    wait_for(browser, lambda d: "/console/sign-in" in d.current_url, "the sign-in page after sign-out")
    browser.get(f"{stack.url}/console/jobs")
    assert "/console/sign-in" in browser.current_url  # the session is gone
