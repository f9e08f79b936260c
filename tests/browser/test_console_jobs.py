"""The jobs pages in a real browser: a running job's progress bar advancing to done while the page refreshes by
itself, a failed copy requeued from the job page until the day is copied, and a job cancelled from there."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from selenium.webdriver.common.by import By

from devstack.procs import wait_until
from tests.browser.pages import assert_fits_a_phone, flash, pause_refresh, sign_in, wait_for
from tests.conftest import SIM_TODAY

pytestmark = pytest.mark.e2e

T0 = SIM_TODAY  # the simulated "today" (the calendar fixture sets it)
RT = "Calls"
STEP = 1000.0  # sandbox seconds per progress step: the job moves only when the test moves the clock


def day(n: int) -> str:
    return (T0 - timedelta(days=n)).isoformat()


def submit(stack, first: int, last: int) -> str:
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": day(first), "end_day": day(last)})
    assert r.status_code == 201, r.text
    return str(r.json()["job_sid"])


def progress_of(driver, sid: str) -> tuple[int, int, str] | None:
    """(value, max, state) of the job's row on the jobs list."""
    rows = driver.find_elements(By.CSS_SELECTOR, f"tr[data-job='{sid}']")
    if not rows:
        return None
    bar = rows[0].find_element(By.TAG_NAME, "progress")
    state = rows[0].find_element(By.CSS_SELECTOR, ".jstate").text.lower()
    return int(bar.get_attribute("value")), int(bar.get_attribute("max")), state


def test_a_running_jobs_progress_bar_advances_to_done(make_stack, calendar, sandbox, browser, screenshot):
    sandbox.update_scenario(step_seconds=STEP, days_per_step=2)  # 6 days: 2 more final at each step from step 2
    stack = make_stack(workers=1, poller=True, **calendar.env())
    sid = submit(stack, 8, 3)
    sign_in(browser, stack.url, path="/console/jobs")
    seen: list[tuple[int, int, str]] = []

    def shows(final: int, state: str | None = None) -> bool:
        now = progress_of(browser, sid)
        if now is not None and (not seen or seen[-1] != now):
            seen.append(now)
        return now is not None and now[0] == final and (state is None or now[2] == state)

    wait_for(browser, lambda d: shows(0), "the new job at 0 of 6 days")
    for final in (2, 4):
        calendar.advance_seconds(STEP * (2 if final == 2 else 1))
        wait_for(browser, lambda d, final=final: shows(final), f"the bar at {final} of 6")  # no refresh() here
        if final == 2:
            screenshot("jobs-running")
    calendar.advance_seconds(STEP)
    wait_for(browser, lambda d: shows(6, "done"), "the job done")
    assert [v for v, _, _ in seen] == sorted(v for v, _, _ in seen)  # the bar only moves forward
    assert {v for v, _, _ in seen} >= {0, 2, 4, 6} and all(m == 6 for _, m, _ in seen)
    assert "6 of 6 days final" in browser.find_element(By.CSS_SELECTOR, f"tr[data-job='{sid}'] .ptext").text
    screenshot("jobs-done")
    browser.find_element(By.CSS_SELECTOR, f"tr[data-job='{sid}'] a").click()
    wait_for(browser, lambda d: sid in d.find_element(By.TAG_NAME, "h1").text, "the job page")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-state='copied']")) == 6
    screenshot("job-done")


def test_a_failed_copy_is_requeued_from_the_job_page(make_stack, calendar, sandbox, s3, bucket, browser, screenshot):
    sandbox.update_scenario(step_seconds=0.05)
    sandbox.set_faults(files={"500": 1000})  # every download fails: both attempts of the copy
    stack = make_stack(workers=1, poller=True, COPY_RETRY_INTERVALS="1", **calendar.env())
    sid = submit(stack, 5, 5)
    stack.wait_job(sid, ("failed",))
    sandbox.set_faults()  # the cause is gone

    sign_in(browser, stack.url, path=f"/console/jobs/{sid}")
    row = browser.find_element(By.ID, f"day-{day(5)}")
    assert row.get_attribute("data-state") == "failed" and "500" in row.text
    screenshot("job-failed")
    screenshot("job-failed-phone", width=390)
    assert_fits_a_phone(browser, stack.url, [f"/console/jobs/{sid}"])  # the long error wraps
    browser.find_element(By.CSS_SELECTOR, "form.requeue button[type=submit]").click()
    wait_for(browser, lambda d: "Requeued 1 day(s)" in flash(d), "the requeue confirmation")
    wait_for(
        browser,
        lambda d: (
            d.find_element(By.ID, f"day-{day(5)}").get_attribute("data-state") == "copied"
            and d.find_element(By.CSS_SELECTOR, "h1 .jstate").text.lower() == "done"
        ),
        "the day copied and the job done",
    )
    key = f"twilio/{RT}/day={day(5)}/{RT}-{day(5)}.json.gz"
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sandbox.expected_day(RT, day(5))["sha256"]
    screenshot("job-requeued")


def test_a_job_is_cancelled_from_the_job_page(make_stack, calendar, sandbox, browser, screenshot):
    sandbox.update_scenario(step_seconds=STEP)  # it stays running at Twilio
    stack = make_stack(workers=1, **calendar.env())
    sid = submit(stack, 9, 3)
    sign_in(browser, stack.url, path=f"/console/jobs/{sid}")
    pause_refresh(browser)  # the waiting job's page would reload itself under the clicks
    screenshot("job-waiting")
    browser.find_element(By.CSS_SELECTOR, "form.cancel button[type=submit]").click()  # unconfirmed: the browser
    assert browser.find_elements(By.CSS_SELECTOR, "form.cancel")  # refuses the form (required box)
    browser.find_element(By.CSS_SELECTOR, "form.cancel input[name=confirm]").click()
    browser.find_element(By.CSS_SELECTOR, "form.cancel button[type=submit]").click()
    wait_for(browser, lambda d: "cancelled" in flash(d), "the cancel confirmation")
    assert browser.find_element(By.CSS_SELECTOR, "h1 .jstate").text.lower() == "cancelled"
    assert not browser.find_elements(By.CSS_SELECTOR, "form.cancel")
    wait_until(lambda: sandbox.job(sid)["deleted"], timeout=10, what="the job deleted at Twilio")
