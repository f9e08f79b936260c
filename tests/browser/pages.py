"""Small helpers the console tests share: signing in (with a browser or plain HTTP), reading the page, waiting for
what a page shows. Selenium is imported only where a browser is used, so the HTTP-only tests run without it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests

from tests.conftest import ADMIN_TOKEN


def sign_in(driver: Any, base_url: str, token: str = ADMIN_TOKEN, path: str = "/console/") -> None:
    """Open ``path`` (the sign-in page comes first), sign in with ``token``, land back on ``path``."""
    driver.get(f"{base_url}{path}")
    assert "/console/sign-in" in driver.current_url, driver.current_url
    field = driver.find_element("id", "token")
    field.send_keys(token)
    field.submit()
    wait_for(driver, lambda d: "/console/sign-in" not in d.current_url, "the console after sign-in")


def console_session(base_url: str, token: str = ADMIN_TOKEN) -> tuple[requests.Session, str]:
    """A signed-in HTTP session without a browser, and its CSRF token (for the console's forms)."""
    http = requests.Session()
    page = http.get(f"{base_url}/console/sign-in", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf, page
    r = http.post(f"{base_url}/console/sign-in", data={"token": token, "csrf_token": csrf[1]}, timeout=10)
    assert r.ok and "/console/sign-in" not in r.url, r.status_code
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', r.text)  # signing in makes a new one
    assert fresh, r.text
    return http, fresh[1]


# Chromium's answers when a page reloads between finding a node and reading it: not a StaleElementReference but a
# plain WebDriverException (seen in CI: "Node with given id does not belong to the document").
RELOAD_RACES = ("does not belong to the document", "target frame detached", "Cannot find context", "No node with")


def wait_for(driver: Any, predicate: Callable[[Any], Any], what: str, timeout: float = 60) -> Any:
    """Poll the page until ``predicate(driver)`` is truthy; a page reloading under us is simply read again."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    def attempt(d: Any) -> Any:
        try:
            return predicate(d)
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        except WebDriverException as exc:
            if any(race in str(exc.msg) for race in RELOAD_RACES):
                return False
            raise

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(attempt, message=f"waiting for {what}")


def text_of(driver: Any, css: str) -> str:
    return str(driver.find_element("css selector", css).text)


def h1(driver: Any) -> str:
    return text_of(driver, "h1")


def flash(driver: Any) -> str:
    return " ".join(e.text for e in driver.find_elements("css selector", ".flash"))


def submit_button(driver: Any, form_css: str) -> None:
    driver.find_element("css selector", f"{form_css} button[type=submit]").click()


def assert_fits_a_phone(driver: Any, base_url: str, paths: list[str], width: int = 390) -> None:
    """Each page, at a phone's width, needs no sideways scrolling."""
    size = driver.get_window_size()
    driver.set_window_size(width, 844)
    try:
        for path in paths:
            driver.get(f"{base_url}{path}")
            inner = driver.execute_script("return window.innerWidth")
            scroll = driver.execute_script("return document.documentElement.scrollWidth")
            assert scroll <= inner, f"{path} is {scroll} px wide in a {inner} px window"
    finally:
        driver.set_window_size(size["width"], size["height"])


def pause_refresh(driver: Any) -> None:
    """Untick "Refresh every N s" (remembered for the tab) so the test can read pages that would reload themselves;
    in one script, so a reload cannot come between finding the box and unticking it."""
    driver.execute_script(
        "sessionStorage.setItem('relay-console-refresh-off', '1');"
        "var box = document.getElementById('autorefresh'); if (box) { box.checked = false; }"
    )
