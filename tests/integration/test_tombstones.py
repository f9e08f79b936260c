"""Retention and deliberate deletions (issue 22) against real Redis, S3 (SeaweedFS and moto: the ``server``
fixture) and the sandbox: a deleted day stays deleted (the reconcile neither finds it nor forgets it, the planner
never wants it) while a day that vanished without a tombstone is fetched again, or left missing with
REFETCH_VANISHED=never; a restore brings a deleted day back; a feed with retain_days neither plans nor reports its
older days as anything but expired; the lifecycle rule follows the feeds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rq import Queue

from app import create_app
from app.bucket import erase_day
from app.bucket import reconcile as bucket_reconcile
from app.feeds import planner
from app.feeds.store import CoverageDay
from app.jobs.records import DayState, JobRecord
from app.platform import clock
from app.platform.config import load_settings
from app.platform.queueing import CONTROL_QUEUE, ERASE_DAY_TASK, SERIALIZER
from app.services import Services
from app.twilio.accounts import owner_of
from tests.conftest import ADMIN_TOKEN, make_env
from tests.days import day
from tests.integration import s3_calls
from workers.day_copier import DayTask, copy_one_day

bucket, sink = s3_calls.server_bucket, s3_calls.server_sink

RT = "Calls"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def make_app(redis_url, server, bucket, sandbox):
    def factory(**env: str) -> Any:
        return create_app(load_settings(make_env(redis_url, server, bucket, sandbox, "http://127.0.0.1:9", **env)))

    return factory


@pytest.fixture
def app(make_app) -> Any:
    return make_app()


def services(app: Any) -> Services:
    return app.extensions["relay"]


def owner(svc: Services) -> str:
    return owner_of(RT, svc.accounts.primary.sid)


def stored_copy(svc: Services, client: Any, bucket: str, sink: Any, iso: str, old: bool = True) -> str:
    """A copied day: its object in the bucket and its coverage record, made well before the next listing."""
    key = sink.day_key(RT, iso, "JS1")
    client.put_object(Bucket=bucket, Key=key, Body=b"x")
    at = clock.now() - bucket_reconcile.LISTING_LAG_SECONDS - 60 if old else clock.now()
    svc.feeds.put_days(owner(svc), {iso: CoverageDay("copied", "JS1", key, 1, updated_at=at)})
    return key


def wanted(svc: Services) -> list[str]:
    feed = svc.feeds.get_feed(owner(svc))
    assert feed is not None
    cov = svc.feeds.day_states([owner(svc)])[owner(svc)]
    return planner.wanted_days(feed, cov, False, svc.settings.sync, clock.now())


def states(app: Any, **query: str) -> dict[str, list[list[str]]]:
    doc = app.test_client().get("/api/coverage", headers=AUTH, query_string={"resource_type": RT, **query})
    assert doc.status_code == 200, doc.get_json()
    return doc.get_json()["feeds"][0]


def test_a_deleted_day_is_erased_by_the_worker_and_never_brought_back(app, client, bucket, sink):
    svc, web = services(app), app.test_client()
    assert web.put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(10)}).status_code == 200
    key = stored_copy(svc, client, bucket, sink, day(5))
    r = web.delete(f"/api/days/{RT}/{day(5)}", headers=AUTH, json={"reason": "GDPR request 17"})
    assert r.status_code == 202, r.get_json()
    doc = r.get_json()
    assert (doc["state"], doc["deleted_by"], doc["reason"], doc["key"], doc["erased"]) == (
        "deleted",
        "api",
        "GDPR request 17",
        key,
        False,
    )
    feed = states(app)
    assert feed["counts"]["deleted"] == 1 and feed["ranges"]["deleted"] == [[day(5), day(5)]]  # at once
    queued = Queue(CONTROL_QUEUE, connection=svc.rq_connection, serializer=SERIALIZER).jobs
    assert [(j.func_name, j.args) for j in queued if j.func_name == ERASE_DAY_TASK] == [
        (ERASE_DAY_TASK, [owner(svc), day(5)])
    ]
    # the worker's part: the objects go, S3 confirms it
    assert erase_day.erase_day(svc.feeds, sink, owner(svc), day(5))["erased"] is True
    assert not sink.holds(key)
    assert svc.feeds.get_day(owner(svc), day(5)).erased is True  # type: ignore[union-attr]
    # the reconcile neither finds it again nor forgets it; the planner never wants it
    result = bucket_reconcile.reconcile(svc.feeds, sink, RT, svc.accounts.primary.sid)
    assert (result.lost, result.refetched) == (0, 0)
    assert svc.feeds.get_day(owner(svc), day(5)).state == "deleted"  # type: ignore[union-attr]
    assert day(5) not in wanted(svc)
    # a restore lifts it: missing again, wanted by the planner
    r = web.post(f"/api/days/{RT}/{day(5)}/restore", headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "missing"
    assert day(5) in wanted(svc)
    assert web.post(f"/api/days/{RT}/{day(5)}/restore", headers=AUTH).status_code == 404


def test_a_tombstoned_day_whose_object_is_still_there_is_not_found_again(app, client, bucket, sink):
    svc = services(app)
    stored_copy(svc, client, bucket, sink, day(5))
    assert app.test_client().delete(f"/api/days/{RT}/{day(5)}", headers=AUTH).status_code == 202
    result = bucket_reconcile.reconcile(svc.feeds, sink, RT, svc.accounts.primary.sid)
    assert result.found == 0
    assert svc.feeds.get_day(owner(svc), day(5)).state == "deleted"  # type: ignore[union-attr]


def test_a_restore_before_the_worker_runs_keeps_the_object(app, client, bucket, sink):
    svc, web = services(app), app.test_client()
    key = stored_copy(svc, client, bucket, sink, day(5))
    assert web.delete(f"/api/days/{RT}/{day(5)}", headers=AUTH).status_code == 202
    assert web.post(f"/api/days/{RT}/{day(5)}/restore", headers=AUTH).status_code == 200
    assert erase_day.erase_day(svc.feeds, sink, owner(svc), day(5))["erased"] is False
    assert sink.holds(key)


def test_a_day_being_copied_cannot_be_deleted_and_a_bad_body_is_refused(app):
    svc, web = services(app), app.test_client()
    svc.feeds.mark_in_flight(owner(svc), "JS1", [day(5)])
    assert web.delete(f"/api/days/{RT}/{day(5)}", headers=AUTH).status_code == 409
    assert web.delete(f"/api/days/{RT}/{day(6)}", headers=AUTH, json={"by": "someone"}).status_code == 400
    assert web.delete(f"/api/days/{RT}/{day(6)}", headers=AUTH, json={"reason": "x" * 501}).status_code == 400
    assert web.delete(f"/api/days/{RT}/not-a-day", headers=AUTH).status_code == 400


def test_a_vanished_day_is_fetched_again_and_the_reconcile_says_so(app, client, bucket, sink, caplog):
    svc = services(app)
    assert app.test_client().put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(10)}).status_code == 200
    key = stored_copy(svc, client, bucket, sink, day(5))
    client.delete_object(Bucket=bucket, Key=key)  # an S3 lifecycle rule, a hand in the console...
    caplog.set_level("WARNING", logger="app.bucket.reconcile")
    result = bucket_reconcile.reconcile(svc.feeds, sink, RT, svc.accounts.primary.sid, "auto")
    assert (result.lost, result.refetched, result.left_missing) == (1, 1, 0)
    assert any("vanished from S3 without a tombstone" in m and "fetched again" in m for m in caplog.messages)
    assert day(5) in wanted(svc)


@pytest.fixture
def never_app(make_app) -> Any:
    """Made before ``caplog`` takes the logs (create_app sets the root logger's handlers)."""
    return make_app(REFETCH_VANISHED="never")


def test_refetch_vanished_never_leaves_the_day_missing(never_app, client, bucket, sink, caplog):
    app = never_app
    svc = services(app)
    assert svc.settings.sync.refetch_vanished == "never"
    assert app.test_client().put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(10)}).status_code == 200
    key = stored_copy(svc, client, bucket, sink, day(5))
    client.delete_object(Bucket=bucket, Key=key)
    caplog.set_level("WARNING", logger="app.bucket.reconcile")
    result = bucket_reconcile.reconcile(svc.feeds, sink, RT, svc.accounts.primary.sid, "never")
    assert (result.lost, result.refetched, result.left_missing) == (1, 0, 1)
    assert any("left missing, not fetched again" in m for m in caplog.messages), caplog.messages
    assert day(5) not in wanted(svc)
    assert any(first <= day(5) <= last for first, last in states(app)["ranges"]["missing"])
    # a restore (or a copy on request) brings it back
    assert app.test_client().post(f"/api/days/{RT}/{day(5)}/restore", headers=AUTH).status_code == 200
    assert day(5) in wanted(svc)


def test_a_feed_with_retain_days_neither_plans_nor_shows_its_older_days(app):
    svc, web = services(app), app.test_client()
    r = web.put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(30), "retain_days": 10})
    assert r.status_code == 200 and r.get_json()["retain_days"] == 10
    wants = wanted(svc)
    assert wants and min(wants) == day(10) and day(11) not in wants
    feed = states(app)
    assert feed["window"][0] == day(10)
    assert feed["ranges"]["expired"] == [[day(30), day(11)]]
    assert feed["counts"]["expired"] == 20
    assert states(app, **{"from": day(12), "to": day(9)})["ranges"] == {
        "expired": [[day(12), day(11)]],
        "missing": [[day(10), day(9)]],
    }
    assert web.put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(30), "retain_days": 0}).status_code == 400


def test_the_lifecycle_rule_follows_the_feeds(app):
    web = app.test_client()
    web.put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(30), "retain_days": 90})
    web.put("/api/feeds/Messages", headers=AUTH, json={"since": day(30)})
    doc = web.get("/api/lifecycle-rule", headers=AUTH).get_json()
    rules = doc["lifecycle_configuration"]["Rules"]
    prefix = services(app).settings.s3_prefix
    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules] == [(f"{prefix}{RT}/day=", 90)]
    assert doc["underivable"] == [] and doc["notes"]
    json.dumps(doc["lifecycle_configuration"])


def test_no_lifecycle_rule_when_the_template_gives_no_prefix_per_feed(make_app):
    app = make_app(S3_KEY_TEMPLATE="{prefix}{day}/{resource_type}.json.gz")
    app.test_client().put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(30), "retain_days": 90})
    doc = app.test_client().get("/api/lifecycle-rule", headers=AUTH).get_json()
    assert doc["lifecycle_configuration"]["Rules"] == []
    assert [u["resource_type"] for u in doc["underivable"]] == [RT]


def test_a_copy_queued_before_the_delete_neither_writes_nor_lifts_the_tombstone(app, client, bucket, sink):
    """A job's copy task that runs after the day was deleted (queued before, or a job whose range spans the day)
    finds the tombstone under the day's copy lock: nothing is written to S3, the job's day fails with the reason,
    and coverage still says deleted (only restore-day or copy-day bring a deleted day back)."""
    svc, web = services(app), app.test_client()
    assert web.put(f"/api/feeds/{RT}", headers=AUTH, json={"since": day(10)}).status_code == 200
    key = stored_copy(svc, client, bucket, sink, day(5))
    assert web.delete(f"/api/days/{RT}/{day(5)}", headers=AUTH).status_code == 202
    assert erase_day.erase_day(svc.feeds, sink, owner(svc), day(5))["erased"] is True
    sid = "JS" + "78" * 16
    svc.jobs.add_job(JobRecord(job_sid=sid, resource_type=RT, start_day=day(5), end_day=day(5)))
    rec = copy_one_day(svc, sink, DayTask(sid, RT, day(5), 10, None, "t-late"), lock_seconds=60, max_attempts=6)
    assert rec is not None and rec.state == DayState.FAILED and "deleted" in (rec.error or "")
    assert not sink.holds(key) and not sink.holds(sink.day_key(RT, day(5), sid))
    assert svc.feeds.get_day(owner(svc), day(5)).state == "deleted"  # type: ignore[union-attr]
    assert svc.days.get_day(sid, day(5)).state == DayState.FAILED  # type: ignore[union-attr]
