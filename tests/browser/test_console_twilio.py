"""The console's "At Twilio" page over HTTP against the real stack (gunicorn, an rq worker, Redis, SeaweedFS, the
Twilio sandbox): Twilio's jobs and day files listed live, a job made elsewhere tracked and a day file the bucket
lacks copied from the page, and a one-off job submitted with its validation errors and quota shown on the page."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.procs import wait_until
from tests.browser.pages import console_session

pytestmark = pytest.mark.e2e

RT = "Calls"


def day(n: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=n)).isoformat()


def made_elsewhere(sandbox: Any, first: int, last: int, name: str) -> str:
    """A job created at Twilio without the relay (as Twilio's Console or another tool would)."""
    jobs = sandbox.twilio_client().bulkexports.v1.exports(RT).export_custom_jobs
    return str(jobs.create(start_day=day(first), end_day=day(last), friendly_name=name).job_sid)


def flash_of(html: str) -> str:
    start = html.index('class="flash')
    return html[start : html.index("</p>", start)]


def row(html: str, attr: str, value: str) -> str:
    """The <tr> of the page whose ``attr`` is ``value``."""
    start = html.index(f'{attr}="{value}"')
    return html[start : html.index("</tr>", start)]


def in_bucket(stack: Any, iso: str) -> bool:
    days = stack.api("GET", f"/api/twilio/days/{RT}").json()["days"]
    return any(d["day"] == iso and d["in_bucket"] for d in days)


def test_jobs_and_days_at_twilio_with_track_and_copy(make_stack, sandbox, s3, bucket):
    theirs = made_elsewhere(sandbox, 6, 5, "made in the Console")
    other = made_elsewhere(sandbox, 8, 8, "another tool")
    for sid in (theirs, other):
        sandbox.complete(sid)
    stack = make_stack(workers=1)
    http, csrf = console_session(stack.url)

    page = http.get(f"{stack.url}/console/twilio?rt={RT}", timeout=30)
    assert page.status_code == 200, page.text
    assert 'aria-current="page">At Twilio</a>' in page.text
    assert 'data-tracked="no"' in row(page.text, "data-twilio-job", theirs)
    assert "made in the Console" in row(page.text, "data-twilio-job", theirs)
    for iso in (day(8), day(6), day(5)):
        assert 'data-bucket="missing"' in row(page.text, "data-twilio-day", iso)
        assert ">Copy<" in row(page.text, "data-twilio-day", iso)

    r = http.post(f"{stack.url}/console/twilio/track", data={"job_sid": theirs, "resource_type": RT}, timeout=30)
    assert r.status_code == 403  # no CSRF token: refused, nothing tracked
    assert stack.api("GET", f"/api/jobs/{theirs}").status_code == 404
    form = {"csrf_token": csrf, "job_sid": theirs, "resource_type": RT}
    r = http.post(f"{stack.url}/console/twilio/track", data=form, timeout=30)
    assert r.status_code == 200 and f"rt={RT}" in r.url, r.url
    assert f"Job {theirs} is tracked" in flash_of(r.text)
    assert 'data-tracked="yes"' in row(r.text, "data-twilio-job", theirs)
    assert stack.api("GET", f"/api/jobs/{theirs}").json()["origin"] == "adopted"
    assert 'data-tracked="no"' in row(r.text, "data-twilio-job", other)  # only the one asked for

    form = {"csrf_token": csrf, "day": day(8), "resource_type": RT}
    r = http.post(f"{stack.url}/console/twilio/copy", data=form, timeout=30)
    assert r.status_code == 200 and f"Copy of {RT} {day(8)} queued" in flash_of(r.text), r.text
    for iso in (day(8), day(6), day(5)):  # the copied day, and the tracked job's days
        wait_until(lambda iso=iso: in_bucket(stack, iso), timeout=90, what=f"{iso} in the bucket")
    key = f"twilio/{RT}/day={day(8)}/{RT}-{day(8)}.json.gz"
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sandbox.expected_day(RT, day(8))["sha256"]
    page = http.get(f"{stack.url}/console/twilio?rt={RT}", timeout=30).text
    assert 'data-bucket="copied"' in row(page, "data-twilio-day", day(8))
    assert ">Copy<" not in row(page, "data-twilio-day", day(8))
    assert len(sandbox.jobs()) == 2  # copying a listed day asked Twilio for no new job

    r = http.post(f"{stack.url}/console/twilio/copy", data=form | {"day": day(20)}, timeout=30)
    assert r.status_code == 200 and "Not copied" in flash_of(r.text) and "lists no" in flash_of(r.text)


def quota_left(html: str) -> tuple[int, int]:
    match = re.search(r"<strong>(\d+)</strong> of (\d+) requested days left today", html)
    assert match, html
    return int(match[1]), int(match[2])


def test_a_one_off_job_is_submitted_from_the_console(make_stack, sandbox):
    stack = make_stack(workers=1, TWILIO_DAILY_DAY_QUOTA="3")
    http, csrf = console_session(stack.url)
    page = http.get(f"{stack.url}/console/twilio", timeout=30)
    assert page.status_code == 200 and quota_left(page.text) == (3, 3)

    form = {"csrf_token": csrf, "resource_type": "Messages", "start_day": day(5), "end_day": day(1)}
    r = http.post(f"{stack.url}/console/twilio/submit", data=form, timeout=30)
    assert r.status_code == 400 and 'id="err-end_day"' in r.text and "end_day must be at most" in r.text
    assert f'value="{day(5)}"' in r.text  # what was typed stays in the form
    r = http.post(f"{stack.url}/console/twilio/submit", data=form | {"end_day": day(4), "email": "nope"}, timeout=30)
    assert r.status_code == 400 and 'id="err-email"' in r.text and "email must be an e-mail address" in r.text
    assert sandbox.jobs() == []  # nothing reached Twilio

    good = form | {"end_day": day(4), "friendly_name": "one-off from the console", "email": "ops@example.com"}
    r = http.post(f"{stack.url}/console/twilio/submit", data=good, timeout=30)
    assert r.status_code == 200 and "/console/jobs/JS" in r.url, (r.status_code, r.url)
    assert "Submitted" in flash_of(r.text)
    assert re.search(r"Estimated completion</dt><dd>\d{4}-\d\d-\d\dT[\d:.]+Z</dd>", r.text)  # with its zone
    (job,) = sandbox.jobs()
    assert job["job_sid"] in r.url and job["resource_type"] == "Messages"
    assert (job["friendly_name"], job["email"]) == ("one-off from the console", "ops@example.com")
    assert quota_left(http.get(f"{stack.url}/console/twilio", timeout=30).text) == (1, 3)

    r = http.post(f"{stack.url}/console/twilio/submit", data=good, timeout=30)
    assert r.status_code == 429 and 'id="err-submit"' in r.text and "2 already requested today" in r.text
    assert len(sandbox.jobs()) == 1


def test_at_twilio_in_a_browser(make_stack, sandbox, browser, screenshot):
    from selenium.webdriver.common.by import By

    from tests.browser.pages import assert_fits_a_phone, flash, sign_in, wait_for

    theirs = made_elsewhere(sandbox, 5, 4, "made in the Console")
    sandbox.complete(theirs)
    stack = make_stack(workers=1)
    sign_in(browser, stack.url, path=f"/console/twilio?rt={RT}")
    wait_for(browser, lambda d: "At Twilio" in d.find_element(By.TAG_NAME, "h1").text, "the At Twilio page")
    assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-twilio-day]")) == 2
    screenshot("at-twilio", docs=True)
    browser.find_element(By.CSS_SELECTOR, f"tr[data-twilio-job='{theirs}'] button[type=submit]").click()
    wait_for(browser, lambda d: "is tracked" in flash(d), "the job tracked")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-twilio-job='{theirs}']")
    assert row.get_attribute("data-tracked") == "yes"
    assert_fits_a_phone(browser, stack.url, [f"/console/twilio?rt={RT}"])


def test_at_twilio_shows_and_acts_on_the_selected_account(make_stack, sandbox):
    sub = sandbox.add_subaccount(sandbox.account_sid, friendly_name="team-a")
    remote = sandbox.twilio_client(sub["sid"], sub["auth_token"], sub["sid"]).bulkexports.v1.exports(RT)
    theirs = str(remote.export_custom_jobs.create(start_day=day(4), end_day=day(4), friendly_name="team job").job_sid)
    stack = make_stack(
        workers=1,
        TWILIO_DISCOVER_SUBACCOUNTS="true",
        TWILIO_API_BASE_URL=sandbox.api_url,
        S3_KEY_TEMPLATE="{prefix}account={account_sid}/{resource_type}/day={day}/{resource_type}-{day}.json.gz",
    )
    http, csrf = console_session(stack.url)
    primary = http.get(f"{stack.url}/console/twilio?rt={RT}", timeout=30).text
    assert theirs not in primary and f"Twilio has no {RT} export job for this account" in primary
    page = http.get(f"{stack.url}/console/twilio?rt={RT}&account={sub['sid']}", timeout=30).text
    assert 'data-tracked="no"' in row(page, "data-twilio-job", theirs)
    action = re.search(r'action="(/console/twilio/track[^"]*)"', page)
    assert action and f"account={sub['sid']}" in action[1]  # the form acts on the account its page showed
    form = {"csrf_token": csrf, "job_sid": theirs, "resource_type": RT}
    r = http.post(f"{stack.url}{action[1].replace('&amp;', '&')}", data=form, timeout=30)
    assert r.status_code == 200 and f"Job {theirs} is tracked" in flash_of(r.text), r.text
    assert stack.api("GET", f"/api/jobs/{theirs}").json()["account_sid"] == sub["sid"]
