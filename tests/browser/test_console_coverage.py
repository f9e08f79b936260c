"""The coverage calendar and the overview in a real browser: a feed with a day in every state (copied, empty, in
flight, failed, missing), the record behind a day shown on keyboard focus, and a day Twilio failed retried from
the calendar until it is copied."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from devstack.procs import wait_until
from tests.browser.pages import assert_fits_a_phone, flash, pause_refresh, sign_in, wait_for
from tests.conftest import SIM_TODAY

pytestmark = pytest.mark.e2e

T0 = SIM_TODAY  # the simulated "today" (the calendar fixture sets it)
RT = "Messages"
STATES = ("copied", "empty", "in_flight", "failed", "corrupt", "missing", "deleted", "expired")


def day(n: int) -> str:
    return (T0 - timedelta(days=n)).isoformat()


def counts(stack: Any) -> dict[str, int]:
    feeds = stack.api("GET", f"/api/coverage?resource_type={RT}").json()["feeds"]
    return dict(feeds[0]["counts"]) if feeds else {}


def cell(driver: Any, iso: str) -> Any:
    return driver.find_element(By.ID, f"d-{iso}")


def object_sha256(s3: Any, bucket: str, iso: str) -> str:
    key = f"twilio/{RT}/day={iso}/{RT}-{iso}.json.gz"
    return hashlib.sha256(s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def test_the_calendar_shows_every_state(make_stack, calendar, sandbox, browser, screenshot):
    # 59 days (T0-60 .. T0-2); 40 requested days a day, 5 of them kept for manual jobs: the planner takes the 35
    # newest (two empty, one failed by Twilio), a slow manual job holds 5 more in flight, 19 stay missing.
    outcomes = {f"{RT}/{day(5)}": "empty_file", f"{RT}/{day(17)}": "empty_file", f"{RT}/{day(9)}": "failed"}
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50, daily_quota_days=40, days=outcomes)
    env = {"TWILIO_DAILY_DAY_QUOTA": "40", "FEED_QUOTA_RESERVE_DAYS": "5", "FEED_MAX_ATTEMPTS": "1"}
    stack = make_stack(workers=2, poller=True, **env, **calendar.env())
    assert stack.api("PUT", f"/api/feeds/{RT}", json={"since": day(60)}).status_code == 200
    settled = {
        "copied": 32,
        "empty": 2,
        "in_flight": 0,
        "failed": 1,
        "corrupt": 0,
        "missing": 24,
        "deleted": 0,
        "expired": 0,
    }
    wait_until(lambda: counts(stack) == settled, timeout=90, interval=0.3, what=f"coverage {settled}")
    sandbox.update_scenario(step_seconds=100000)
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": day(44), "end_day": day(40)})
    assert r.status_code == 201, r.text
    every = {
        "copied": 32,
        "empty": 2,
        "in_flight": 5,
        "failed": 1,
        "corrupt": 0,
        "missing": 19,
        "deleted": 0,
        "expired": 0,
    }
    wait_until(lambda: counts(stack) == every, timeout=30, interval=0.3, what=f"coverage {every}")

    sign_in(browser, stack.url)
    screenshot("overview", docs=True)  # at once: these pages reload themselves (days in flight)
    browser.get(f"{stack.url}/console/jobs")
    screenshot("jobs", docs=True)
    pause_refresh(browser)  # from here on the test reads the pages: no reloads under it
    states = [e.text.lower() for e in browser.find_elements(By.CSS_SELECTOR, "tr[data-job] .jstate")]
    assert "failed" in states and "waiting" in states  # the planner's job (a day failed) and the slow manual one
    browser.find_element(By.LINK_TEXT, "Overview").click()
    wait_for(browser, lambda d: "1 failed" in d.find_element(By.CSS_SELECTOR, ".answers").text, "the overview")
    browser.find_element(By.LINK_TEXT, RT).click()
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "h1").text == f"{RT} coverage, 2026", "the calendar")
    cells = browser.find_elements(By.CSS_SELECTOR, "a.day[data-state]")
    shown = {state: 0 for state in STATES}
    for c in cells:
        state = c.get_attribute("data-state")
        shown[state] += 1
        assert c.text == {"copied": "C", "empty": "E", "in_flight": "I", "failed": "F", "missing": "M"}[state]
        assert state.replace("_", " ") in c.get_attribute("aria-label")  # the state in words, for screen readers
    assert shown == every
    legend = browser.find_element(By.CSS_SELECTOR, ".legend").text
    for words in ("copied", "empty (no records)", "in flight", "failed", "missing", "outside the feed's window"):
        assert words in legend

    # Keyboard: focus a copied day, its record shows; Enter opens its detail.
    copied = cell(browser, day(3))
    browser.execute_script("arguments[0].focus()", copied)
    tip = copied.find_element(By.CLASS_NAME, "tip")
    assert tip.is_displayed()
    expected = sandbox.expected_day(RT, day(3))
    for fact in (f"twilio/{RT}/day={day(3)}/", "size 4.0 KiB", f"records {expected['records']}", expected["sha256"]):
        assert fact in tip.text, (fact, tip.text)
    assert "job JS" in tip.text
    screenshot("calendar-focus")
    copied.send_keys(Keys.ENTER)
    wait_for(browser, lambda d: d.find_element(By.ID, "detail").is_displayed(), "the day's detail")
    assert expected["sha256"] in browser.find_element(By.ID, "detail").text
    assert not browser.find_elements(By.CSS_SELECTOR, "#detail form.retry")  # a copied day has nothing to retry

    cell(browser, day(9)).send_keys(Keys.ENTER)  # links are in the tab order: focusable and activated by Enter
    wait_for(browser, lambda d: day(9) in d.find_element(By.ID, "detail").text, "the failed day's detail")
    assert browser.find_element(By.CSS_SELECTOR, "#detail form button").text == f"Retry {day(9)}"
    screenshot("coverage", docs=True)  # README: docs/screenshots/coverage.png
    screenshot("calendar-phone", width=390, max_height=1700)
    pages = ["/console/", "/console/jobs", "/console/feeds", f"/console/feeds/{RT}/calendar?day={day(3)}"]
    assert_fits_a_phone(browser, stack.url, pages)


def test_a_failed_day_is_retried_from_the_calendar_until_copied(
    make_stack, calendar, sandbox, s3, bucket, browser, screenshot
):
    sandbox.update_scenario(step_seconds=0.05, days={f"{RT}/{day(4)}": "failed"})  # Twilio fails that day
    stack = make_stack(workers=1, poller=True, FEED_MAX_ATTEMPTS="1", **calendar.env())
    assert stack.api("PUT", f"/api/feeds/{RT}", json={"since": day(5)}).status_code == 200
    wait_until(lambda: counts(stack).get("failed") == 1 and counts(stack)["copied"] == 3, timeout=60, what="a failure")

    sign_in(browser, stack.url, path=f"/console/feeds/{RT}/calendar")
    failed = cell(browser, day(4))
    assert failed.get_attribute("data-state") == "failed" and failed.text == "F"
    failed.send_keys(Keys.ENTER)
    detail = wait_for(browser, lambda d: d.find_element(By.ID, "detail"), "the failed day's detail")
    assert "failed" in detail.text and "new export" in detail.text
    sandbox.update_scenario(days={f"{RT}/{day(4)}": "completed"})  # the cause is gone at Twilio
    screenshot("calendar-failed")
    detail.find_element(By.CSS_SELECTOR, "form button").click()
    wait_for(browser, lambda d: "planner asks Twilio for a new export" in flash(d), "the retry confirmation")
    # The page refreshes by itself while the day is missing (quota left) and then in flight, until it is copied.
    wait_for(browser, lambda d: cell(d, day(4)).get_attribute("data-state") == "copied", "the day copied", 90)
    assert object_sha256(s3, bucket, day(4)) == sandbox.expected_day(RT, day(4))["sha256"]
    screenshot("calendar-retried")
