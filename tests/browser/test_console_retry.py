"""The calendar's retry rule over plain HTTP (signed-in session, CSRF token; no browser needed), against the real
stack: a day whose copy failed is requeued in its own job (no new export), a day Twilio lists is copied from that
file (no quota), and a day with neither is left to the planner (its record removed)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest

from devstack.procs import wait_until
from tests.browser.pages import console_session
from tests.conftest import SIM_TODAY

pytestmark = pytest.mark.e2e

T0 = SIM_TODAY  # the simulated "today" (the calendar fixture sets it)
RT = "Messages"


def day(n: int) -> str:
    return (T0 - timedelta(days=n)).isoformat()


def state_of(stack: Any, iso: str) -> str | None:
    feed = stack.api("GET", f"/api/coverage?resource_type={RT}").json()["feeds"][0]
    for state, ranges in feed["ranges"].items():
        if any(first <= iso <= last for first, last in ranges):
            return str(state)
    return None


def retry(stack: Any, iso: str) -> str:
    """POST the calendar's retry form; the flash message of the page it leads to."""
    http, csrf = console_session(stack.url)
    r = http.post(f"{stack.url}/console/feeds/{RT}/days/{iso}/retry", data={"csrf_token": csrf}, timeout=30)
    assert r.status_code == 200 and f"day={iso}" in r.url, (r.status_code, r.url)
    start = r.text.index('class="flash')
    return r.text[start : r.text.index("</p>", start)]


def in_s3(s3: Any, bucket: str, sandbox: Any, iso: str) -> bool:
    key = f"twilio/{RT}/day={iso}/{RT}-{iso}.json.gz"
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return hashlib.sha256(body).hexdigest() == sandbox.expected_day(RT, iso)["sha256"]


def test_a_failed_copy_is_requeued_in_its_own_job(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05)
    sandbox.set_faults(files={"500": 1000})
    stack = make_stack(workers=1, COPY_RETRY_INTERVALS="1", FEED_MAX_ATTEMPTS="1", **calendar.env())
    assert stack.api("PUT", f"/api/feeds/{RT}", json={"since": day(3)}).status_code == 200
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": day(3), "end_day": day(3)})
    sid = r.json()["job_sid"]
    wait_until(lambda: state_of(stack, day(3)) == "failed", timeout=60, what="the copy failed")
    sandbox.set_faults()

    message = retry(stack, day(3))
    assert f"requeued in job {sid}" in message and "no quota" in message
    wait_until(lambda: state_of(stack, day(3)) == "copied", timeout=60, what="the day copied")
    assert in_s3(s3, bucket, sandbox, day(3))
    assert [j["job_sid"] for j in sandbox.jobs()] == [sid]  # no new export was asked for


def test_a_listed_day_is_copied_and_an_unlisted_one_left_to_the_planner(make_stack, calendar, sandbox, s3, bucket):
    sandbox.update_scenario(step_seconds=0.05)
    stack = make_stack(workers=1, **calendar.env())  # no poller: nothing but the retry touches the feed
    assert stack.api("PUT", f"/api/feeds/{RT}", json={"since": day(5)}).status_code == 200
    elsewhere = (
        sandbox.twilio_client()
        .bulkexports.v1.exports(RT)
        .export_custom_jobs.create(start_day=day(3), end_day=day(3), friendly_name="made in Twilio's console")
    )
    wait_until(lambda: sandbox.job(elsewhere.job_sid)["final"], timeout=10, what="the other job done at Twilio")

    message = retry(stack, day(3))
    assert "copying the file Twilio lists" in message
    wait_until(lambda: state_of(stack, day(3)) == "copied", timeout=60, what="the listed day copied")
    assert in_s3(s3, bucket, sandbox, day(3))

    message = retry(stack, day(4))  # Twilio lists nothing for it
    assert "planner asks Twilio for a new export at its next poll" in message
    assert state_of(stack, day(4)) == "missing"
    assert len(sandbox.jobs()) == 1  # the console itself never submits a job


def test_a_copied_day_is_not_retried(make_stack, calendar, sandbox):
    stack = make_stack(workers=1, **calendar.env())
    assert stack.api("PUT", f"/api/feeds/{RT}", json={"since": day(3)}).status_code == 200
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": day(3), "end_day": day(3)})
    stack.wait_job(r.json()["job_sid"])
    message = retry(stack, day(3))
    assert "was not retried" in message and "copied: there is nothing to retry" in message
    assert "outside" in retry(stack, day(30))
