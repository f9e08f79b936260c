"""The calendar's Delete button (confirmed) and Restore, against the real stack: over plain HTTP (signed-in
session, CSRF token; runs everywhere) and in Chromium (skipped where Chromium is missing): the day is deleted on
the console's word only when the box is ticked, a worker erases its object, the calendar shows it ``deleted`` with
who and why, and Restore lifts the tombstone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from devstack.procs import wait_until
from tests.browser.pages import console_session, flash, sign_in, wait_for
from tests.conftest import SIM_TODAY

pytestmark = pytest.mark.e2e

T0 = SIM_TODAY
RT = "Messages"


def day(n: int) -> str:
    return (T0 - timedelta(days=n)).isoformat()


def key_of(iso: str) -> str:
    return f"twilio/{RT}/day={iso}/{RT}-{iso}.json.gz"


def state_of(stack: Any, iso: str) -> str | None:
    feed = stack.api("GET", f"/api/coverage?resource_type={RT}").json()["feeds"][0]
    for state, ranges in feed["ranges"].items():
        if any(first <= iso <= last for first, last in ranges):
            return str(state)
    return None


def held(s3: Any, bucket: str, iso: str) -> bool:
    return bool(s3.client().list_objects_v2(Bucket=bucket, Prefix=key_of(iso)).get("KeyCount"))


def copied_feed(make_stack: Any, calendar: Any, sandbox: Any) -> Any:
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    stack = make_stack(workers=1, poller=True, **calendar.env(), POLL_INTERVAL_SECONDS="1")
    assert stack.api("PUT", f"/api/feeds/{RT}", json={"since": day(4)}).status_code == 200
    wait_until(lambda: state_of(stack, day(2)) == "copied" and state_of(stack, day(4)) == "copied", timeout=60)
    return stack


def test_the_console_deletes_only_when_confirmed_and_restores(make_stack, calendar, sandbox, s3, bucket):
    stack = copied_feed(make_stack, calendar, sandbox)
    http, csrf = console_session(stack.url)
    url = f"{stack.url}/console/feeds/{RT}/days/{day(3)}"
    r = http.post(f"{url}/delete", data={"csrf_token": csrf, "reason": "owner asked"}, timeout=30)
    assert r.status_code == 200 and "tick the box" in r.text
    assert state_of(stack, day(3)) == "copied"
    r = http.post(f"{url}/delete", data={"csrf_token": csrf, "reason": "owner asked", "confirm": "yes"}, timeout=30)
    assert r.status_code == 200 and f"{day(3)} deleted" in r.text, r.text[:500]
    assert state_of(stack, day(3)) == "deleted"
    wait_until(lambda: not held(s3, bucket, day(3)), timeout=30, what="the worker erasing it")
    page = http.get(f"{stack.url}/console/feeds/{RT}/calendar?day={day(3)}", timeout=30).text
    assert "console: owner asked" in page and f"Restore {day(3)}" in page
    r = http.post(f"{url}/restore", data={"csrf_token": csrf}, timeout=30)
    assert r.status_code == 200 and "restored" in r.text
    wait_until(lambda: state_of(stack, day(3)) == "copied", timeout=60, what="the restored day copied again")


def test_the_delete_button_in_a_browser(make_stack, calendar, sandbox, s3, bucket, browser):
    stack = copied_feed(make_stack, calendar, sandbox)
    sign_in(browser, stack.url, path=f"/console/feeds/{RT}/calendar")
    browser.find_element(By.ID, f"d-{day(3)}").send_keys(Keys.ENTER)
    detail = wait_for(browser, lambda d: d.find_element(By.ID, "detail"), "the day's detail")
    form = detail.find_element(By.CSS_SELECTOR, "form.cancel")
    form.find_element(By.NAME, "reason").send_keys("owner asked")
    form.find_element(By.NAME, "confirm").click()
    form.find_element(By.CSS_SELECTOR, "button.danger").click()
    wait_for(browser, lambda d: f"{day(3)} deleted" in flash(d), "the deletion confirmed")
    wait_for(browser, lambda d: d.find_element(By.ID, f"d-{day(3)}").get_attribute("data-state") == "deleted", "shown")
    wait_until(lambda: not held(s3, bucket, day(3)), timeout=30, what="the worker erasing it")
