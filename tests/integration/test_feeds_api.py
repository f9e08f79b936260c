"""Feeds, coverage and daily exports through the API and CLI, in-process against real Redis, S3 and the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.feeds.store import CoverageDay
from app.jobs.submission import SubmitRequest, submit
from app.platform.config import load_settings
from app.twilio.accounts import owner_of
from tests.conftest import ADMIN_TOKEN, make_env

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC = "http://127.0.0.1:9"


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture
def make_app(redis_url, s3, bucket, sandbox):
    def factory(**env):
        return create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, PUBLIC, **env)))

    return factory


@pytest.fixture
def client(make_app):
    app = make_app()
    client = app.test_client()
    client.svc = app.extensions["relay"]
    return client


def put(client, rt, **body):
    return client.put(f"/api/feeds/{rt}", json=body, headers=AUTH)


def test_a_feed_is_set_shown_listed_and_deleted(client):
    r = put(client, "Messages", since=day(40), until=day(10))
    assert r.status_code == 200, r.get_json()
    expected = {"resource_type": "Messages", "account": client.svc.accounts.primary.sid, "since": day(40)} | {
        "until": day(10)
    }
    assert r.get_json() == expected | {"enabled": True, "managed_by": "api", "retain_days": None}
    assert client.get("/api/feeds/Messages", headers=AUTH).get_json()["since"] == day(40)
    assert [f["resource_type"] for f in client.get("/api/feeds", headers=AUTH).get_json()["feeds"]] == ["Messages"]
    assert client.delete("/api/feeds/Messages", headers=AUTH).status_code == 200
    assert client.get("/api/feeds/Messages", headers=AUTH).status_code == 404
    assert client.get("/api/feeds", headers=AUTH).get_json() == {"feeds": []}


@pytest.mark.parametrize(
    ("rt", "body", "field"),
    [
        ("Faxes", {"since": day(10)}, "resource_type"),
        ("Calls", {"since": "2025-13-01"}, "since"),
        ("Calls", {"since": "2025-02-30"}, "since"),
        ("Calls", {"since": "20250201"}, "since"),
        ("Calls", {"since": day(10) + "\n"}, "since"),
        ("Calls", {"since": day(10), "until": "yesterday"}, "until"),
        ("Calls", {"since": day(10), "until": day(20)}, "since must not be after until"),
        ("Calls", {"since": day(1)}, "since must be at most"),
        ("Calls", {"since": "2007-12-31"}, "since must be 2008-01-01 or later"),
        ("Calls", {"since": "0001-01-01", "until": day(10)}, "since must be 2008-01-01 or later"),
        ("Calls", {"since": day(10), "enabled": "yes"}, "enabled"),
        ("Calls", {"since": day(10), "colour": "red"}, "colour"),
        ("Calls", {}, "since"),
    ],
)
def test_bad_feeds_are_400_naming_the_field_and_store_nothing(client, rt, body, field):
    r = put(client, rt, **body)
    assert r.status_code == 400, r.get_json()
    assert field in r.get_json()["detail"]
    assert client.get("/api/feeds", headers=AUTH).get_json() == {"feeds": []}


def test_the_api_cannot_change_a_feed_declared_by_sync_feeds(client, make_app):
    from app.feeds.declared import apply_env_feeds

    env_app = make_app(SYNC_FEEDS=f"Calls:{day(30)}")
    svc = env_app.extensions["relay"]
    apply_env_feeds(svc.feeds, svc.settings.sync, [svc.accounts.primary.sid])  # what every poll does
    feed = client.get("/api/feeds/Calls", headers=AUTH).get_json()
    assert (feed["since"], feed["managed_by"]) == (day(30), "env")
    r = put(client, "Calls", since=day(20))
    assert r.status_code == 409 and "SYNC_FEEDS" in r.get_json()["detail"]
    assert client.delete("/api/feeds/Calls", headers=AUTH).status_code == 409
    assert client.get("/api/feeds/Calls", headers=AUTH).get_json()["since"] == day(30)  # untouched
    no_feeds = load_settings({**_env(svc), "SYNC_FEEDS": ""}).sync
    apply_env_feeds(svc.feeds, no_feeds, [svc.accounts.primary.sid])  # removed from the setting
    assert client.get("/api/feeds/Calls", headers=AUTH).status_code == 404


def _env(svc):
    import os

    return {**os.environ, **{k: v for k, v in _settings_env(svc).items() if v}}


def _settings_env(svc):
    s = svc.settings
    return {
        "REDIS_URL": s.redis_url,
        "TWILIO_ACCOUNT_SID": s.twilio_account_sid,
        "TWILIO_AUTH_TOKEN": s.twilio_auth_token or "",
        "TWILIO_BULKEXPORTS_BASE_URL": s.twilio_base_url,
        "S3_BUCKET": s.s3_bucket,
        "ADMIN_TOKEN": ADMIN_TOKEN,
    }


def test_coverage_counts_states_and_folds_days_into_ranges(client):
    svc = client.svc
    assert put(client, "Calls", since=day(12), until=day(3)).status_code == 200
    owner = owner_of("Calls", svc.accounts.primary.sid)
    svc.feeds.put_days(
        owner,
        {day(12): CoverageDay("copied"), day(11): CoverageDay("copied"), day(10): CoverageDay("empty")}
        | {day(9): CoverageDay("failed", attempts=5), day(8): CoverageDay("retry", attempts=1, next_try=1e12)},
    )
    svc.feeds.mark_in_flight(owner, "JS" + "ab" * 16, [day(5), day(4)])
    doc = client.get("/api/coverage?resource_type=Calls", headers=AUTH).get_json()
    feed = doc["feeds"][0]
    assert feed["window"] == [day(12), day(3)]
    assert feed["counts"] == {"copied": 2, "empty": 1, "in_flight": 2, "failed": 1, "corrupt": 0, "missing": 4} | {
        "deleted": 0,
        "expired": 0,
    }
    assert feed["ranges"]["copied"] == [[day(12), day(11)]]
    assert feed["ranges"]["missing"] == [[day(8), day(6)], [day(3), day(3)]]  # a retry waits: missing
    assert feed["lag_days"] == 7  # the window's last day (until: today-3) vs the newest copied or empty day
    assert doc["quota"]["limit"] == 366 and doc["quota"]["resets_at"].endswith("T00:00:00Z")
    narrowed = client.get(f"/api/coverage?resource_type=Calls&from={day(5)}&to={day(4)}", headers=AUTH).get_json()
    assert narrowed["feeds"][0]["counts"]["in_flight"] == 2 and sum(narrowed["feeds"][0]["counts"].values()) == 2
    assert client.get("/api/coverage?from=2025-02-30", headers=AUTH).status_code == 400


def test_a_submission_marks_feed_days_in_flight_and_a_refused_one_frees_them(client, sandbox):
    svc = client.svc
    owner = owner_of("Calls", svc.accounts.primary.sid)
    svc.feeds.put_days(owner, {day(5): CoverageDay("copied")})
    job = submit(svc, SubmitRequest("Calls", *_dates(5, 3), "x", None)).jobs[0]
    cov = svc.feeds.coverage([owner])[owner]
    assert cov[day(5)].state == "copied"  # never downgraded
    assert (cov[day(4)].state, cov[day(4)].job_sid) == ("in_flight", job.job_sid)
    sandbox.set_faults(api={"403": 1, "only": ["CreateExportCustomJob"]})
    with pytest.raises(Exception, match="403"):
        submit(svc, SubmitRequest("Calls", *_dates(8, 7), "refused", None))
    cov = svc.feeds.coverage([owner])[owner]
    assert day(8) not in cov and day(7) not in cov  # free again for the planner


def _dates(first: int, last: int):
    from datetime import date

    return date.fromisoformat(day(first)), date.fromisoformat(day(last))


def test_daily_export_refused_without_editions_is_422_and_changes_nothing(client, sandbox):
    sandbox.update_scenario(editions=False)
    r = client.put("/api/daily/Messages", json={"enabled": True}, headers=AUTH)
    assert r.status_code == 422, r.get_json()
    assert "Editions" in r.get_json()["detail"]
    assert sandbox.export_configuration()["Messages"]["enabled"] is False
    assert client.get("/api/daily/Messages", headers=AUTH).get_json()["enabled"] is False


def test_daily_export_enabled_registers_our_webhook_with_a_hashed_token(client, sandbox):
    sandbox.update_scenario(editions=True)
    r = client.put("/api/daily/Messages", json={"enabled": True}, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {
        "resource_type": "Messages",
        "account_sid": client.svc.accounts.primary.sid,
        "enabled": True,
        "webhook": "relay",
        "webhook_method": "POST",
    }
    url = sandbox.export_configuration()["Messages"]["webhook_url"]
    assert url.startswith(f"{PUBLIC}/hooks/bulkexport?token=")
    token = url.split("token=", 1)[1]
    assert token not in str(
        client.svc.feeds.get_daily(owner_of("Messages", client.svc.accounts.primary.sid))
    )  # only its hash is kept
    assert client.put("/api/daily/Messages", json={"enabled": "yes"}, headers=AUTH).status_code == 400
    off = client.put("/api/daily/Messages", json={"enabled": False}, headers=AUTH).get_json()
    assert off["enabled"] is False and off["webhook"] is None


def test_copy_day_of_a_day_twilio_does_not_list_is_404(client):
    r = client.post(f"/api/days/Calls/{day(3)}/copy", headers=AUTH)
    assert r.status_code == 404 and "lists no Calls file" in r.get_json()["detail"]


def test_feed_and_coverage_cli(make_app):
    app = make_app()
    runner = app.test_cli_runner()
    out = runner.invoke(args=["relay", "feed", "set", "Calls", "--since", day(40)])
    assert out.exit_code == 0 and "Calls" in out.output and "managed by api" in out.output
    bad = runner.invoke(args=["relay", "feed", "set", "Calls", "--since", "2025-02-30"])
    assert bad.exit_code == 1 and "since is not a real calendar day" in bad.output
    too_old = runner.invoke(args=["relay", "feed", "set", "Calls", "--since", "2007-12-31"])
    assert too_old.exit_code == 1 and "since must be 2008-01-01 or later" in too_old.output
    cal = runner.invoke(args=["relay", "coverage", "Calls"])
    assert cal.exit_code == 0, cal.output
    assert "missing 39" in cal.output and "legend:" in cal.output
    assert len(cal.output.splitlines()) < 12  # 39 days: two or three month lines, not one line per day
