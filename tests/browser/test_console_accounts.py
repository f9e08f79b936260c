"""The console with many accounts (a parent and two subaccounts discovered through the sandbox's Accounts API), in a
real browser and over plain HTTP: the selector in the header, every account at a glance on the overview, each
account's own feeds and calendar, actions (retry, a daily export) applied to the selected account only, the jobs
list by account, and an account the relay does not serve answered with a 404 page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from devstack.procs import wait_until
from tests.browser.pages import assert_fits_a_phone, console_session, flash, h1, pause_refresh, sign_in, wait_for
from tests.conftest import ADMIN_TOKEN, SIM_TODAY

pytestmark = pytest.mark.e2e

T0 = SIM_TODAY  # the simulated "today" (the calendar fixture sets it)
TEMPLATE = "{prefix}account={account_sid}/{resource_type}/day={day}/{resource_type}-{day}.json.gz"


def day(n: int) -> str:
    return (T0 - timedelta(days=n)).isoformat()


@pytest.fixture
def family(make_stack, calendar, sandbox) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A relay serving the sandbox's account (the parent) and its subaccounts team-a and team-b, discovered; a
    feed each (disabled, and no poller: nothing changes but what a test does). No worker unless asked."""
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    subs = {name: sandbox.add_subaccount(sandbox.account_sid, friendly_name=name) for name in ("team-a", "team-b")}
    stack = make_stack(
        workers=1,
        **calendar.env(),
        TWILIO_DISCOVER_SUBACCOUNTS="true",
        TWILIO_API_BASE_URL=sandbox.api_url,
        ACCOUNTS_REFRESH_SECONDS="10",
        S3_KEY_TEMPLATE=TEMPLATE,
    )
    for account, rt, since in (("", "Messages", day(3)), ("team-a", "Messages", day(6)), ("team-b", "Calls", day(2))):
        query = f"?account={account}" if account else f"?account={sandbox.account_sid}"
        r = stack.api("PUT", f"/api/feeds/{rt}{query}", json={"since": since, "enabled": False})
        assert r.status_code == 200, r.text
    return stack, subs


def state_of(stack: Any, account: str, rt: str, iso: str) -> str | None:
    feed = stack.api("GET", f"/api/coverage?resource_type={rt}&account={account}").json()["feeds"][0]
    for state, ranges in feed["ranges"].items():
        if any(first <= iso <= last for first, last in ranges):
            return str(state)
    return None


def make_listed_day(sandbox: Any, sub: dict[str, Any], rt: str, iso: str) -> None:
    """A job made at Twilio with the subaccount's own credentials (not the relay's): its day is listed there."""
    client = sandbox.twilio_client(sub["sid"], sub["auth_token"], account_sid=sub["sid"])
    job = client.bulkexports.v1.exports(rt).export_custom_jobs.create(start_day=iso, end_day=iso, friendly_name="x")
    wait_until(lambda: sandbox.job(job.job_sid)["final"], timeout=10, what="the job done at Twilio")


def choose_account(driver: Any, name: str) -> None:
    """Pick an account in the header's selector with the keyboard and show it (Enter on the focused button)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    select = driver.find_element(By.ID, "account-select")
    label = driver.find_element(By.CSS_SELECTOR, "label[for=account-select]")
    assert label.text == "Account"
    Select(select).select_by_visible_text(next(o.text for o in Select(select).options if o.text.startswith(name)))
    driver.find_element(By.CSS_SELECTOR, ".account-picker button").send_keys(Keys.ENTER)


def test_switching_accounts_shows_each_accounts_calendar_and_acts_on_it(family, sandbox, browser, screenshot):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    stack, subs = family
    a, b = subs["team-a"], subs["team-b"]
    make_listed_day(sandbox, a, "Messages", day(4))
    sign_in(browser, stack.url)

    # Every account at a glance, with its state in words, on the overview.
    rows = {r.get_attribute("data-account"): r.text for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-account]")}
    assert set(rows) == {sandbox.account_sid, a["sid"], b["sid"]}
    assert "team-a" in rows[a["sid"]] and "ok" in rows[a["sid"]] and "no: 5 missing" in rows[a["sid"]]
    assert "no: 1 missing" in rows[b["sid"]]
    options = [o.text for o in Select(browser.find_element(By.ID, "account-select")).options]
    assert len(options) == 3 and all(o.endswith(": ok") for o in options), options
    screenshot("accounts-overview")

    choose_account(browser, "team-a")
    wait_for(browser, lambda d: f"account={a['sid']}" in d.current_url, "team-a's overview")
    browser.get(f"{stack.url}/console/feeds?account={a['sid']}")
    assert h1(browser) == "Feeds and daily exports of team-a"
    assert [r.get_attribute("data-feed") for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-feed]")] == [
        "Messages"
    ]
    browser.find_element(By.CSS_SELECTOR, "tr[data-feed='Messages'] a").click()
    wait_for(browser, lambda d: "Messages coverage" in h1(d) and "team-a" in h1(d), "team-a's calendar")
    pause_refresh(browser)
    team_a_days = {e.get_attribute("data-day") for e in browser.find_elements(By.CSS_SELECTOR, "a.day[data-day]")}
    assert team_a_days == {day(n) for n in range(2, 7)}  # its own window, not the parent's
    screenshot("accounts-calendar-team-a")

    # Retry a day of team-a: Twilio lists a file for it in team-a only, so it is copied from there.
    browser.find_element(By.ID, f"d-{day(4)}").click()
    wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#detail form button"), "the day's detail")
    assert f"account={a['sid']}" in browser.find_element(By.CSS_SELECTOR, "#detail form").get_attribute("action")
    browser.find_element(By.CSS_SELECTOR, "#detail form button").click()
    wait_for(browser, lambda d: "copying the file Twilio lists" in flash(d), "the retry's message")
    assert f"account={a['sid']}" in browser.current_url  # the redirect kept the account
    wait_until(lambda: state_of(stack, a["sid"], "Messages", day(4)) == "copied", timeout=60, what="copied")
    assert state_of(stack, sandbox.account_sid, "Messages", day(3)) == "missing"  # the parent's feed untouched
    browser.refresh()  # the page's own refresh is paused
    wait_for(browser, lambda d: d.find_element(By.ID, f"d-{day(4)}").get_attribute("data-state") == "copied", "C")
    screenshot("accounts-calendar-team-a-retried")

    # team-b: its own calendar, then its daily export turned on from its feeds page.
    choose_account(browser, "team-b")
    wait_for(browser, lambda d: h1(d) == "Feeds and daily exports of team-b", "team-b's feeds (from a calendar)")
    browser.find_element(By.CSS_SELECTOR, "tr[data-daily='Messages'] button").click()
    wait_for(browser, lambda d: "daily export of Messages is on" in flash(d), "the daily export on")
    assert f"account={b['sid']}" in browser.current_url
    assert stack.api("GET", f"/api/daily/Messages?account={b['sid']}").json()["enabled"] is True
    assert sandbox.export_configuration(b["sid"])["Messages"]["enabled"] is True
    for other in (sandbox.account_sid, a["sid"]):
        assert stack.api("GET", f"/api/daily/Messages?account={other}").json()["enabled"] is False
        assert sandbox.export_configuration(other)["Messages"]["enabled"] is False
    browser.find_element(By.CSS_SELECTOR, "tr[data-feed='Calls'] a").click()
    wait_for(browser, lambda d: "Calls coverage" in h1(d) and "team-b" in h1(d), "team-b's calendar")
    assert {e.get_attribute("data-day") for e in browser.find_elements(By.CSS_SELECTOR, "a.day[data-day]")} == {day(2)}
    screenshot("accounts-calendar-team-b")
    screenshot("accounts-calendar-team-b-phone", width=390)
    browser.get(f"{stack.url}/console/")
    screenshot("accounts-overview-phone", width=390)
    assert_fits_a_phone(browser, stack.url, [f"/console/?account={b['sid']}", f"/console/jobs?account={b['sid']}"])
    for page in ("/console/", "/console/feeds", "/console/jobs?all=1"):
        browser.get(f"{stack.url}{page}")
        assert not any(s in browser.page_source for s in (a["auth_token"], b["auth_token"], sandbox.auth_token))


def test_the_jobs_list_is_by_account_and_a_jobs_actions_stay_in_its_account(family, sandbox):
    stack, subs = family
    a = subs["team-a"]
    mine = stack.api(
        "POST",
        "/api/jobs",
        json={"resource_type": "Messages", "start_day": day(5), "end_day": day(5), "account": "team-a"},
    ).json()["job_sid"]
    body = {"resource_type": "Calls", "start_day": day(5), "end_day": day(5), "account": sandbox.account_sid}
    theirs = stack.api("POST", "/api/jobs", json=body).json()["job_sid"]
    stack.wait_job(mine)
    stack.wait_job(theirs)
    http, csrf = console_session(stack.url)

    def listed(query: str) -> set[str]:
        return set(
            re.findall(r'data-job="(JS[0-9a-f]+)"', http.get(f"{stack.url}/console/jobs{query}", timeout=10).text)
        )

    assert listed(f"?account={a['sid']}") == {mine}
    assert listed("") == {theirs}  # no account chosen: TWILIO_ACCOUNT_SID's
    every = http.get(f"{stack.url}/console/jobs?all=1", timeout=10).text
    assert set(re.findall(r'data-job="(JS[0-9a-f]+)"', every)) == {mine, theirs}
    assert re.search(rf'data-job="{mine}".*?class="job-account">team-a<', every, re.S)

    # A job's page shows its own account, whichever account the link came from; its forms carry that account.
    page = http.get(f"{stack.url}/console/jobs/{mine}?account={sandbox.account_sid}", timeout=10).text
    assert "Account team-a" in page and f'value="{a["sid"]}" selected' in page
    # A form naming another account than the job's is refused; nothing is done.
    form = {"csrf_token": csrf, "confirm": "yes"}
    r = http.post(f"{stack.url}/console/jobs/{mine}/cancel?account={sandbox.account_sid}", data=form, timeout=10)
    assert r.status_code == 409 and "belongs to account" in r.text
    assert stack.api("GET", f"/api/jobs/{mine}").json()["state"] == "done"


def test_an_account_not_served_is_a_404_page(family, sandbox):
    stack, _ = family
    http, csrf = console_session(stack.url)
    for query in ("AC" + "0" * 32, "nobody", "x" * 500, "\x00team-a"):
        for path in (
            "/console/",
            "/console/feeds",
            "/console/jobs",
            "/console/jobs?all=1",
            "/console/feeds/Messages/calendar",
        ):
            r = http.get(f"{stack.url}{path}", params={"account": query}, timeout=10)
            assert r.status_code == 404, (path, query, r.status_code)
            assert "is not served by this relay" in r.text and "account selector" in r.text
    form = {"csrf_token": csrf, "enabled": "true"}
    r = http.post(f"{stack.url}/console/daily/Calls?account=nobody", data=form, timeout=10)
    assert r.status_code == 404
    assert sandbox.export_configuration()["Calls"]["enabled"] is False
    # Without a session, the account list is not shown to anyone.
    anonymous = requests.get(f"{stack.url}/console/sign-in", timeout=10).text
    assert "account-select" not in anonymous and "team-a" not in anonymous
    assert ADMIN_TOKEN not in anonymous


SID_RE = re.compile(r"AC[0-9a-fA-F]{32}")


def test_an_anonymous_account_parameter_reveals_no_sid_and_no_label(family, sandbox):
    """``?account=`` without a session is never resolved: the sign-in redirect and page are the same for a label
    that exists, one that does not and a SID, and carry only the raw path asked for (issue 20, item 13)."""
    stack, subs = family
    served = {sandbox.account_sid, *(s["sid"] for s in subs.values())}
    asked = ["team-a", "team-b", "nobody", subs["team-a"]["sid"], "AC" + "0" * 32]
    for value in asked:
        for path in ("/console/jobs", "/console/feeds/Messages/calendar"):
            r = requests.get(f"{stack.url}{path}", params={"account": value}, allow_redirects=False, timeout=10)
            assert r.status_code == 302, (path, value, r.status_code)
            target = urlsplit(r.headers["Location"])
            assert target.path == "/console/sign-in", r.headers["Location"]
            assert parse_qs(target.query) == {"next": [f"{path}?account={value}"]}, r.headers["Location"]
            page = requests.get(f"{stack.url}/console/sign-in?{target.query}", timeout=10)
            shown = set(SID_RE.findall(page.text)) | set(SID_RE.findall(page.headers.get("Location", "")))
            assert page.status_code == 200 and shown <= {value}, (value, shown)  # at most the SID typed in
            assert not (shown & served - {value})
    # The same page straight to the sign-in URL with ?account= (no redirect): nothing resolved either.
    page = requests.get(f"{stack.url}/console/sign-in", params={"account": "team-b"}, timeout=10)
    assert page.status_code == 200 and not SID_RE.search(page.text)
    # Signed in, the raw next path leads to the account asked for.
    http = requests.Session()
    form = http.get(f"{stack.url}/console/sign-in", params={"next": "/console/jobs?account=team-a"}, timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf
    data = {"token": ADMIN_TOKEN, "csrf_token": csrf[1], "next": "/console/jobs?account=team-a"}
    landed = http.post(f"{stack.url}/console/sign-in", data=data, timeout=10)
    assert landed.url.endswith("/console/jobs?account=team-a") and "Jobs of team-a" in landed.text


def test_a_suspended_account_says_so_in_the_selector_and_the_overview(family, sandbox):
    stack, subs = family
    b = subs["team-b"]
    sandbox.suspend_account(b["sid"])
    http, _ = console_session(stack.url)

    def overview() -> str | None:  # the relay sees it at its next discovery (ACCOUNTS_REFRESH_SECONDS)
        page = http.get(f"{stack.url}/console/", timeout=10).text
        return page if f"team-b ({b['sid']}): suspended</option>" in page else None

    page = str(wait_until(overview, timeout=45, what="team-b shown as suspended"))
    row = re.search(rf'<tr data-account="{b["sid"]}".*?</tr>', page, re.S)
    assert row and 'class="acct-state bad"' in row[0] and "</span> suspended" in row[0]
    assert f"team-a ({subs['team-a']['sid']}): ok</option>" in page
