"""Small helpers the browser tests share: signing in, reading the page, waiting for what a page shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ADMIN_TOKEN


def sign_in(driver: Any, base_url: str, token: str = ADMIN_TOKEN, path: str = "/console/") -> None:
    """Open ``path`` (the sign-in page comes first), sign in with ``token``, land back on ``path``."""
    driver.get(f"{base_url}{path}")
    assert "/console/sign-in" in driver.current_url, driver.current_url
    field = driver.find_element(By.ID, "token")
    field.send_keys(token)
    field.submit()
    wait_for(driver, lambda d: "/console/sign-in" not in d.current_url, "the console after sign-in")


def wait_for(driver: Any, predicate: Callable[[Any], Any], what: str, timeout: float = 60) -> Any:
    """Poll the page until ``predicate(driver)`` is truthy; a page reloading under us is simply read again."""
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
    )
    return wait.until(predicate, message=f"waiting for {what}")


def text_of(driver: Any, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def h1(driver: Any) -> str:
    return text_of(driver, "h1")


def flash(driver: Any) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, ".flash"))


def submit_button(driver: Any, form_css: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f"{form_css} button[type=submit]").click()
