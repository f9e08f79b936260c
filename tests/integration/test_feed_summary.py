"""Feed summaries (app/feeds/summary.py) in-process against real Redis, S3 and the sandbox: anonymous /health and
/metrics report feeds from the poller's last summary, never from coverage computed on the request, and name no
account; /health with the admin token names each feed and account; a feed stored before ``since`` was bounded is
bounded when read (issue 20)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.feeds import summary as feed_summary
from app.feeds.store import CoverageDay, Feed
from app.platform import clock
from app.platform.config import load_settings
from app.platform.days import EARLIEST_DAY
from tests.conftest import ADMIN_TOKEN, make_env

PUBLIC = "https://relay.example.com"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def make_client(redis_url, s3, bucket, sandbox, monkeypatch):
    """A fresh app per call: its 2-second health caches start empty, so each answer is computed anew."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)

    def factory():
        app = create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, PUBLIC)))
        client = app.test_client()
        client.svc = app.extensions["relay"]
        return client

    return factory


def feed_days(client) -> dict[tuple[str, str], float]:
    """(resource type, state) -> days, from an anonymous scrape."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (s.labels["resource_type"], s.labels["state"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "relay_feed_days"
    }


def test_anonymous_answers_come_from_the_summary_not_from_coverage(make_client):
    client = make_client()
    svc, account = client.svc, client.svc.accounts.primary.sid
    since = clock.utc_today() - timedelta(days=11)  # a 10-day window (to today-2)
    svc.feeds.put_feed(Feed("Calls", since.isoformat(), account=account))
    assert feed_days(client) == {}  # not summarised yet: nothing computed for the scrape
    assert client.get("/health").get_json(force=True)["checks"]["feeds:lagDays"] == []

    assert feed_summary.refresh(svc) == 1  # what each poll does
    assert feed_days(make_client())[("Calls", "missing")] == 10
    svc.feeds.put_days(f"{account}:Calls", {since.isoformat(): CoverageDay("copied", key="k", size=1)})
    assert feed_days(make_client())[("Calls", "copied")] == 0  # coverage changed, the summary did not
    feed_summary.refresh(svc)
    days = feed_days(make_client())
    assert (days[("Calls", "copied")], days[("Calls", "missing")]) == (1, 9)
    (check,) = make_client().get("/health").get_json(force=True)["checks"]["feeds:lagDays"]
    assert (check["componentId"], check["observedValue"], check["status"]) == (
        "Calls",
        9,
        "warn",
    )  # today-2 minus the copied today-11
    assert check["output"] == "1 feed(s)" and account not in str(check)

    svc.feeds.delete_feed(f"{account}:Calls")  # a deleted feed leaves the answers at once, before any poll
    assert feed_days(make_client()) == {} and feed_summary.current(svc) == []


def test_the_admin_token_names_feeds_and_accounts_and_a_wrong_one_is_refused(make_client):
    client = make_client()
    svc, account = client.svc, client.svc.accounts.primary.sid
    svc.feeds.put_feed(Feed("Messages", (clock.utc_today() - timedelta(days=5)).isoformat(), account=account))
    svc.account_states.put(account, state="credentials refused", error="HTTP 401: Authenticate (20003)")
    feed_summary.refresh(svc)
    anonymous = client.get("/health")
    assert "Authorization" in anonymous.headers["Vary"]
    body = anonymous.get_data(as_text=True)
    assert account not in body and "Authenticate" not in body
    assert anonymous.get_json(force=True)["checks"]["accounts:state"] == [
        {"componentId": "credentials refused", "status": "warn", "observedValue": 1}
    ]
    named = client.get("/health", headers=AUTH)
    assert named.status_code in (200, 503) and "no-store" in named.headers["Cache-Control"]
    checks = named.get_json(force=True)["checks"]
    (acct,) = checks["accounts:state"]
    assert (acct["account"], acct["observedValue"], acct["output"]) == (
        account,
        "credentials refused",
        "HTTP 401: Authenticate (20003)",
    )
    (feed,) = checks["feeds:lagDays"]
    assert (feed["account"], feed["label"], feed["componentId"]) == (
        account,
        svc.accounts.primary.label or None,
        "Messages",
    )
    wrong = client.get("/health", headers={"Authorization": "Bearer wrong-token"})
    assert wrong.status_code == 401 and account not in wrong.get_data(as_text=True)


def test_a_feed_stored_before_the_bound_is_bounded_when_read(make_client):
    """A feed an older release stored with a since of year 1 costs no more than one since EARLIEST_DAY."""
    client = make_client()
    svc = client.svc
    svc.feeds.put_feed(Feed("Calls", "0001-01-01", account=svc.accounts.primary.sid))
    (feed,) = client.get("/api/coverage", headers=AUTH).get_json()["feeds"]
    assert feed["window"][0] == EARLIEST_DAY.isoformat()
    newest = clock.utc_today() - timedelta(days=2)
    assert feed["counts"]["missing"] == (newest - EARLIEST_DAY).days + 1
