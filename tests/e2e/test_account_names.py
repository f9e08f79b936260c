"""Account names under attack (issue 20, items 3 and 5), against the real gunicorn (and its discovery through the
Accounts API), Redis, SeaweedFS and the sandbox.

Item 3: a subaccount's holder renames it to another subaccount's SID, another renames theirs to a sibling's label.
Every action naming the victim by SID (a feed PUT with ``account=``, the daily-export toggle, copying a listed day,
the console's ``?account=`` pages, daily toggle and retry) lands on the victim; the shared label names nobody.

Item 5: the Accounts API answers a page whose next link points at a tripwire's host: discovery never goes there
with the parent's credentials, and reports why (``/api/accounts``, ``/health``, the web log)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from app import create_app
from app.platform.config import load_settings
from devstack.procs import wait_until
from tests.accounts_api_stub import AccountsApiStub
from tests.browser.pages import console_session
from tests.conftest import SIM_TODAY
from tests.tripwire import Tripwire

pytestmark = pytest.mark.e2e

RT = "Calls"
TEMPLATE = "{prefix}account={account_sid}/{resource_type}/day={day}/{resource_type}-{day}.json.gz"


def day(n: int) -> str:
    return (SIM_TODAY - timedelta(days=n)).isoformat()


def discovering(sandbox: Any, calendar: Any, api_base_url: str) -> dict[str, str]:
    return {
        **calendar.env(),
        "TWILIO_DISCOVER_SUBACCOUNTS": "true",
        "TWILIO_API_BASE_URL": api_base_url,
        "ACCOUNTS_REFRESH_SECONDS": "10",
        "S3_KEY_TEMPLATE": TEMPLATE,
    }


def make_listed_day(sandbox: Any, sub: dict[str, Any], iso: str) -> None:
    """A job made at Twilio with the subaccount's own credentials: its day is listed there (and only there)."""
    client = sandbox.twilio_client(sub["sid"], sub["auth_token"], account_sid=sub["sid"])
    job = client.bulkexports.v1.exports(RT).export_custom_jobs.create(start_day=iso, end_day=iso, friendly_name="x")
    wait_until(lambda: sandbox.job(job.job_sid)["final"], timeout=10, what="the job done at Twilio")


@pytest.fixture
def renamed(make_stack, calendar, sandbox) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The sandbox's account (the parent) with subaccounts: the victim "team-a", the impostor renamed to the
    victim's SID, the twin renamed to "team-a", and "team-b" (untouched); a relay discovering them."""
    sandbox.update_scenario(step_seconds=0.05, days_per_step=50)
    # Created before the victim: the Accounts API lists them first, where "first match wins" used to pick them.
    names = ("impostor", "twin", "victim", "team-b")
    subs = {name: sandbox.add_subaccount(sandbox.account_sid, friendly_name=name) for name in names}
    sandbox.update_account(subs["victim"]["sid"], friendly_name="team-a")
    sandbox.update_account(subs["impostor"]["sid"], friendly_name=subs["victim"]["sid"])
    sandbox.update_account(subs["twin"]["sid"], friendly_name="team-a")
    stack = make_stack(workers=0, **discovering(sandbox, calendar, sandbox.api_url))
    return stack, subs


def test_a_subaccount_named_like_another_never_receives_its_actions(renamed, sandbox):
    stack, subs = renamed
    victim, impostor, twin = (subs[n]["sid"] for n in ("victim", "impostor", "twin"))
    listed = {a["sid"]: a for a in stack.api("GET", "/api/accounts").json()["accounts"]}
    assert listed[impostor]["label"] is None and listed[impostor]["friendly_name"] is None  # not even shown
    assert listed[victim]["label"] is None and listed[twin]["label"] is None  # "team-a" is shared: nobody's
    assert listed[victim]["friendly_name"] == listed[twin]["friendly_name"] == "team-a"
    assert listed[subs["team-b"]["sid"]]["label"] == "team-b"

    # The API: a feed, the daily export, a listed day copied; each names the victim by SID.
    r = stack.api("PUT", f"/api/feeds/{RT}?account={victim}", json={"since": day(8), "enabled": False})
    assert r.status_code == 200 and r.json()["account"] == victim, r.text
    assert [f["account"] for f in stack.api("GET", "/api/feeds").json()["feeds"]] == [victim]
    r = stack.api("PUT", f"/api/daily/{RT}?account={victim}", json={"enabled": True})
    assert r.status_code == 200, r.text
    assert sandbox.export_configuration(victim)[RT]["enabled"] is True
    assert sandbox.export_configuration(impostor)[RT]["enabled"] is False
    make_listed_day(sandbox, subs["victim"], day(5))
    make_listed_day(sandbox, subs["victim"], day(6))
    r = stack.api("POST", f"/api/days/{RT}/{day(5)}/copy?account={victim}")
    assert r.status_code == 202 and r.json()["account_sid"] == victim, r.text
    for shared in ("team-a", "Team-A", f" {victim}", victim + "\u200b"):  # a shared label or a disguise: nobody
        r = stack.api("PUT", f"/api/daily/{RT}", params={"account": shared}, json={"enabled": False})
        assert r.status_code == 400 and "is not served" in r.text, (shared, r.text)
    assert sandbox.export_configuration(victim)[RT]["enabled"] is True

    # The console: ?account= with the victim's SID shows and acts on the victim.
    http, csrf = console_session(stack.url)
    page = http.get(f"{stack.url}/console/feeds", params={"account": victim}, timeout=10).text
    assert f'value="{victim}" selected' in page and f'value="{impostor}" selected' not in page
    r = http.post(f"{stack.url}/console/daily/{RT}?account={victim}", data={"csrf_token": csrf, "enabled": "false"})
    assert r.status_code == 200 and "is off" in r.text, r.status_code
    assert sandbox.export_configuration(victim)[RT]["enabled"] is False
    r = http.post(f"{stack.url}/console/feeds/{RT}/days/{day(6)}/retry?account={victim}", data={"csrf_token": csrf})
    assert r.status_code == 200 and "copying the file Twilio lists" in r.text, r.text[-2000:]
    jobs = stack.api("GET", f"/api/jobs?account={victim}").json()["jobs"]
    assert {j["start_day"] for j in jobs} == {day(5), day(6)}
    for other in (impostor, twin):
        assert stack.api("GET", f"/api/jobs?account={other}").json()["meta"]["total"] == 0
        assert sandbox.export_configuration(other)[RT]["enabled"] is False
    assert http.get(f"{stack.url}/console/feeds", params={"account": "team-a"}, timeout=10).status_code == 404

    # The CLI names each by SID; a shared name is shown in parentheses, a SID-looking one not at all.
    out = create_app(load_settings(stack.env)).test_cli_runner().invoke(args=["relay", "accounts"])
    lines = {line.split()[0]: line for line in out.output.splitlines() if line.startswith("AC")}
    assert "(team-a)" in lines[victim] and "(team-a)" in lines[twin]
    assert lines[impostor].count(victim) == 0 and lines[victim].count(impostor) == 0


def test_a_rename_while_the_relay_runs_takes_nothing_over(make_stack, calendar, sandbox):
    """The same attack after discovery: the next refresh (ACCOUNTS_REFRESH_SECONDS) drops the shared label and
    never gives the impostor the victim's SID as a name."""
    impostor, victim = (sandbox.add_subaccount(sandbox.account_sid, friendly_name=n) for n in ("impostor", "team-a"))
    stack = make_stack(workers=0, WEB_CONCURRENCY="1", **discovering(sandbox, calendar, sandbox.api_url))
    assert stack.api("GET", "/api/feeds?account=team-a").status_code == 200
    sandbox.update_account(impostor["sid"], friendly_name=victim["sid"])

    def refreshed() -> bool:
        listed = {a["sid"]: a for a in stack.api("GET", "/api/accounts").json()["accounts"]}
        return listed[impostor["sid"]]["friendly_name"] is None

    wait_until(refreshed, timeout=40, what="the rename seen by the relay's next discovery")
    r = stack.api("PUT", f"/api/feeds/{RT}?account={victim['sid']}", json={"since": day(8), "enabled": False})
    assert r.status_code == 200 and r.json()["account"] == victim["sid"], r.text
    sandbox.update_account(impostor["sid"], friendly_name="team-a")
    wait_until(
        lambda: stack.api("GET", "/api/feeds?account=team-a").status_code == 400,
        timeout=40,
        what="the shared label dropped at the next discovery",
    )
    assert stack.api("GET", f"/api/feeds?account={impostor['sid']}").json()["feeds"] == []


@pytest.fixture
def leaky_accounts_api(sandbox) -> Iterator[AccountsApiStub]:
    api = AccountsApiStub(sandbox.account_sid)
    yield api
    api.close()


@pytest.mark.parametrize("field", ["next_page_url", "next_page_uri"])
def test_discovery_never_follows_a_page_to_another_host(make_stack, calendar, sandbox, leaky_accounts_api, field):
    with Tripwire("127.0.0.2") as wire:
        setattr(leaky_accounts_api, field, f"{wire.url}/2010-04-01/Accounts.json?Page=1&PageToken=PT1")
        stack = make_stack(workers=0, **discovering(sandbox, calendar, leaky_accounts_api.base))
        doc = stack.api("GET", "/api/accounts").json()
        assert "list subaccounts: Twilio's next_page_url" in doc["discovery_error"], doc
        assert "not followed" in doc["discovery_error"], doc
        health = requests.get(f"{stack.url}/health", timeout=10).json()
        assert {"componentId": "discovery", "status": "warn", "output": "subaccount discovery failed"} in health[
            "checks"
        ]["accounts:state"]
        log = stack.log_dir / "web.log"
        wait_until(
            lambda: re.search(r"subaccount discovery failed: .*not followed", log.read_text(errors="replace")),
            timeout=10,
            what="the refusal in the web log",
        )
        assert wire.connections == 0, wire.received
    requests_seen = leaky_accounts_api.list_requests
    assert requests_seen and all(r["authorization"].startswith("Basic ") for r in requests_seen)
    assert all(r["path"].startswith("/2010-04-01/Accounts.json?") for r in requests_seen)
