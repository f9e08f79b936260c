"""Feeds and daily exports changed from the console, in a real browser: the API's validation with the error shown
next to its field (nothing stored), a feed added, changed and stopped, a daily export turned on, and Twilio's
refusal (no Editions) shown inline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.pages import flash, sign_in, wait_for
from tests.conftest import SIM_TODAY

pytestmark = pytest.mark.e2e

T0 = SIM_TODAY  # the simulated "today" (the calendar fixture sets it)


def day(n: int) -> str:
    return (T0 - timedelta(days=n)).isoformat()


def fill(driver, field_id: str, value: str) -> None:
    """Set a date input to an ISO day (its text entry is locale-shaped, so the value is set directly)."""
    driver.execute_script("arguments[0].value = arguments[1]", driver.find_element(By.ID, field_id), value)


def save(driver, rt: str, since: str, until: str = "") -> None:
    Select(driver.find_element(By.ID, "f-rt")).select_by_value(rt)
    fill(driver, "f-since", since)
    fill(driver, "f-until", until)
    driver.find_element(By.CSS_SELECTOR, ".feed-form button[type=submit]").click()


def feeds(stack) -> dict[str, dict]:
    return {f["resource_type"]: f for f in stack.api("GET", "/api/feeds").json()["feeds"]}


def test_feeds_and_daily_exports_are_changed_with_inline_errors(make_stack, calendar, sandbox, browser, screenshot):
    stack = make_stack(workers=0, **calendar.env())
    sign_in(browser, stack.url, path="/console/feeds")

    save(browser, "Calls", day(1))  # too new: custom jobs end at today-2
    error = wait_for(browser, lambda d: d.find_element(By.ID, "err-since"), "the error next to Since")
    assert f"since must be at most {day(2)}" in error.text
    since = browser.find_element(By.ID, "f-since")
    assert since.get_attribute("aria-invalid") == "true" and since.get_attribute("aria-describedby") == "err-since"
    assert since.get_attribute("value") == day(1)  # what was typed is kept
    screenshot("feeds-error")
    assert feeds(stack) == {}

    save(browser, "Calls", day(30), day(40))
    wait_for(browser, lambda d: "since must not be after until" in d.find_element(By.ID, "err-since").text, "error")
    assert feeds(stack) == {}

    save(browser, "Calls", "2007-12-31")  # older than any Twilio record (app.platform.days.EARLIEST_DAY): refused
    too_old = "since must be 2008-01-01 or later"
    wait_for(browser, lambda d: too_old in d.find_element(By.ID, "err-since").text, "the error next to Since")
    assert feeds(stack) == {}

    save(browser, "Calls", day(30))
    wait_for(browser, lambda d: "Calls feed is saved" in flash(d), "the saved feed")
    assert feeds(stack)["Calls"]["since"] == day(30) and feeds(stack)["Calls"]["until"] is None

    browser.find_element(By.CSS_SELECTOR, "tr[data-feed='Calls'] a[href*='edit=Calls']").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "f-since").get_attribute("value") == day(30), "the form filled")
    fill(browser, "f-until", day(10))
    browser.find_element(By.CSS_SELECTOR, ".feed-form button[type=submit]").click()
    wait_for(browser, lambda d: f"to {day(10)}" in flash(d), "the changed feed")
    assert feeds(stack)["Calls"]["until"] == day(10)
    assert day(10) in browser.find_element(By.CSS_SELECTOR, "tr[data-feed='Calls']").text

    browser.find_element(By.CSS_SELECTOR, "tr[data-daily='Calls'] button").click()
    wait_for(browser, lambda d: "daily export of Calls is on" in flash(d), "the daily export on")
    assert sandbox.export_configuration()["Calls"]["enabled"] is True
    assert browser.find_element(By.CSS_SELECTOR, "tr[data-daily='Calls'] td").text == "on"
    screenshot("feeds", docs=True)

    sandbox.update_scenario(editions=False)
    browser.find_element(By.CSS_SELECTOR, "tr[data-daily='Messages'] button").click()
    alert = wait_for(browser, lambda d: d.find_element(By.ID, "err-daily"), "Twilio's refusal shown inline")
    assert "Messages" in alert.text and "Editions" in alert.text and alert.get_attribute("role") == "alert"
    assert browser.find_element(By.CSS_SELECTOR, "tr[data-daily='Messages'] td").text == "off"
    assert sandbox.export_configuration()["Messages"]["enabled"] is False

    browser.find_element(By.CSS_SELECTOR, "tr[data-feed='Calls'] form button").click()
    wait_for(browser, lambda d: "Calls feed is stopped" in flash(d), "the stopped feed")
    assert feeds(stack) == {} and not browser.find_elements(By.CSS_SELECTOR, "tr[data-feed]")
