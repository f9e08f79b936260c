"""Outbound events against real Redis and a real receiver on loopback: what each emitter queues (payloads, one
event per occurrence), that emitting never raises into the caller, and how a delivery is made (signed, no
redirects, no proxy from the environment). Delivery by RQ workers with retries: tests/e2e/test_events.py."""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from rq.job import Job

from app.feeds import summary
from app.feeds.store import Feed
from app.jobs import events, lifecycle
from app.jobs.records import DayRecord, DayState, JobRecord, JobState
from app.jobs.retention import UncopiedDay
from app.platform import clock
from app.platform.config import NotifySettings, load_settings
from app.platform.locks import event_key
from app.platform.metrics import cluster_counts
from app.platform.queueing import CONTROL_QUEUE, EVENT_TASK, SERIALIZER, JSONQueue
from app.services import Services
from tests.conftest import make_env
from tests.event_receiver import EventReceiver
from tests.tripwire import Tripwire

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
SID = "JS" + "e" * 32


def services(redis_url: str, s3: Any, bucket: str, sandbox: Any, **env: str) -> Services:
    from app import create_app

    app = create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, "http://127.0.0.1:9", **env)))
    svc: Services = app.extensions["relay"]
    return svc


@pytest.fixture
def svc(redis_url, s3, bucket, sandbox) -> Services:
    return services(redis_url, s3, bucket, sandbox, NOTIFY_URL="http://127.0.0.1:9/events", NOTIFY_SECRET=SECRET)


def queued_events(svc: Services) -> list[tuple[str, dict[str, Any]]]:
    """(webhook-id, payload) of every delivery task waiting in the control queue."""
    queue = JSONQueue(CONTROL_QUEUE, connection=svc.rq_connection)
    out = []
    for job_id in queue.get_job_ids():
        job = Job.fetch(job_id, connection=svc.rq_connection, serializer=SERIALIZER)
        if job.func_name == EVENT_TASK:
            assert job_id == f"event-{job.args[0]}"
            out.append((job.args[0], json.loads(job.args[1])))
    return out


def add_job(svc: Services, days: dict[str, DayState], **fields: Any) -> JobRecord:
    first, last = min(days), max(days)
    job = JobRecord(job_sid=SID, resource_type="Calls", start_day=first, end_day=last, **fields)
    assert svc.jobs.add_job(job)
    for day, state in days.items():
        svc.days.put_day(SID, DayRecord(day=day, state=state, twilio_status="completed"))
    return job


def counted(svc: Services, event_type: str, outcome: str) -> float:
    return cluster_counts().get(f"relay_events|type={event_type},outcome={outcome}", 0.0)


def test_a_finished_job_queues_one_job_event_with_its_outcome(svc: Services) -> None:
    add_job(svc, {"2026-11-01": DayState.COPIED, "2026-11-02": DayState.EMPTY, "2026-11-03": DayState.FAILED})
    assert lifecycle.finish(
        svc, SID, JobState.FAILED, manifest_key="twilio/Calls/_manifests/x.json", error="1 day(s) failed"
    )
    assert not lifecycle.finish(svc, SID, JobState.FAILED), "final already: no second event"
    ((eid, payload),) = queued_events(svc)
    finalized_at = svc.jobs.get_job(SID).finalized_at  # type: ignore[union-attr]
    assert eid == events.event_id("job.failed", SID, repr(finalized_at))
    assert payload["type"] == "job.failed" and payload["timestamp"].endswith("Z")
    data = payload["data"]
    assert (data["job_sid"], data["state"], data["resource_type"]) == (SID, "failed", "Calls")
    assert data["account_sid"] == svc.settings.twilio_account_sid
    assert (data["start_day"], data["end_day"]) == ("2026-11-01", "2026-11-03")
    assert (data["copied_days"], data["empty_days"], data["failed_days"]) == (1, 1, ["2026-11-03"])
    assert data["manifest_key"] == "twilio/Calls/_manifests/x.json" and data["error"] == "1 day(s) failed"
    assert counted(svc, "job.failed", "queued") == 1


def test_a_done_job_has_one_id_however_often_it_is_finished(svc: Services) -> None:
    add_job(svc, {"2026-11-01": DayState.COPIED})
    assert lifecycle.finish(svc, SID, JobState.DONE)
    svc.jobs.reopen_job(SID)  # a requeue (or a rebuilt registry) finishes it again: the same fact
    svc.locks.release_event(events.event_id("job.done", SID, ""))  # even once the claim is gone
    assert lifecycle.finish(svc, SID, JobState.DONE)
    ((eid, payload),) = queued_events(svc)  # one RQ task per id: the second emission found it queued
    assert eid == events.event_id("job.done", SID, "") and payload["data"]["state"] == "done"


def test_a_cancelled_job_is_not_announced(svc: Services) -> None:
    add_job(svc, {"2026-11-01": DayState.PENDING})
    assert lifecycle.finish(svc, SID, JobState.CANCELLED, error="cancelled on request")
    assert queued_events(svc) == []


def test_a_failed_day_event_carries_its_error_without_secrets(svc: Services) -> None:
    add_job(svc, {"2026-11-05": DayState.PENDING})
    leaked = "GET https://bucket.s3.amazonaws.com/f.gz?X-Amz-Signature=abcdef0123 failed; token " + SECRET
    rec = DayRecord(day="2026-11-05", state=DayState.FAILED, attempts=3, error=leaked)
    svc.days.put_day(SID, rec)
    events.day_failed(svc, SID, rec)
    events.day_failed(svc, SID, rec)  # the same failure reported twice: one event
    ((eid, payload),) = queued_events(svc)
    assert eid == events.event_id("day.failed", f"{SID}/2026-11-05", repr(rec.updated_at))
    data = payload["data"]
    assert (data["job_sid"], data["day"], data["resource_type"], data["attempts"]) == (SID, "2026-11-05", "Calls", 3)
    assert "abcdef0123" not in data["error"] and SECRET not in data["error"] and "[redacted]" in data["error"]


def lagging_after_a_poll(svc: Services) -> None:
    """What a poll does: summarise the feeds (app/feeds/summary.py), then announce the lagging ones from them."""
    summary.refresh(svc)
    summary.feeds_lagging(svc)


def test_lagging_feeds_once_reconciled_and_at_risk_jobs_are_announced_once_per_utc_day(svc: Services) -> None:
    account = svc.settings.twilio_account_sid
    since = (clock.utc_today() - timedelta(days=12)).isoformat()
    svc.feeds.put_feed(Feed(resource_type="Messages", since=since, account=account))
    lagging_after_a_poll(svc)  # its coverage is not known before its first reconcile: nothing announced
    assert queued_events(svc) == []
    svc.feeds.mark_run("reconcile", f"{account}:Messages", clock.now())  # compared with the bucket: nothing there
    at_risk = [
        UncopiedDay(SID, "2026-11-01", DayState.COPYING, 5.5 * 86400),
        UncopiedDay(SID, "2026-11-02", DayState.PENDING, 5.2 * 86400),
    ]
    add_job(svc, {"2026-11-01": DayState.COPYING, "2026-11-02": DayState.PENDING})
    for _ in range(3):  # three polls on the same UTC day
        lagging_after_a_poll(svc)
        events.retention_at_risk(svc, at_risk)
    by_type = {p["type"]: (eid, p["data"]) for eid, p in queued_events(svc)}
    assert sorted(by_type) == ["feed.lagging", "retention.at_risk"] and len(queued_events(svc)) == 2
    eid, lag = by_type["feed.lagging"]
    assert eid == events.event_id("feed.lagging", f"{account}:Messages", clock.utc_today().isoformat())
    assert lag["resource_type"] == "Messages" and lag["lag_days"] > summary.FEED_LAG_DAYS
    assert lag["counts"]["missing"] == lag["lag_days"] and lag["threshold_days"] == 2
    eid, risk = by_type["retention.at_risk"]
    assert eid == events.event_id("retention.at_risk", SID, clock.utc_today().isoformat())
    assert risk["day_count"] == 2 and [d["day"] for d in risk["days"]] == ["2026-11-01", "2026-11-02"]
    assert risk["days"][0]["age_seconds"] == round(5.5 * 86400) and risk["days"][0]["deleted_at"].endswith("Z")


def test_a_feed_within_two_days_is_not_lagging(svc: Services) -> None:
    account = svc.settings.twilio_account_sid
    newest = clock.utc_today() - timedelta(days=2)
    svc.feeds.put_feed(Feed(resource_type="Calls", since=newest.isoformat(), account=account))
    svc.feeds.mark_run("reconcile", f"{account}:Calls", clock.now())
    lagging_after_a_poll(svc)  # nothing copied yet: the lag is the whole window, one day, below the threshold
    assert queued_events(svc) == []


def test_nothing_is_emitted_without_notify_settings(redis_url, s3, bucket, sandbox) -> None:
    plain = services(redis_url, s3, bucket, sandbox)
    url_only = services(redis_url, s3, bucket, sandbox, NOTIFY_URL="https://hooks.example.com/x")  # the web's case
    add_job(plain, {"2026-11-01": DayState.COPIED})
    assert lifecycle.finish(plain, SID, JobState.DONE)
    for svc in (plain, url_only):
        events.retention_at_risk(svc, [UncopiedDay(SID, "2026-11-01", DayState.PENDING, 6 * 86400)])
        events.registry_recovered(svc, [SID])
    assert queued_events(plain) == [] and not plain.locks.r.keys(event_key("*"))


def test_an_emitter_never_raises_and_a_failed_enqueue_can_be_retried(svc: Services, monkeypatch) -> None:
    add_job(svc, {"2026-11-01": DayState.COPIED})

    def refuse(*args: Any) -> bool:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(svc.enqueuer, "event", refuse)
    days = [UncopiedDay(SID, "2026-11-01", DayState.COPYING, 6 * 86400)]
    events.retention_at_risk(svc, days)  # does not raise
    assert counted(svc, "retention.at_risk", "emit_failed") == 1
    monkeypatch.undo()
    events.retention_at_risk(svc, days)  # the claim was released: the next poll emits it
    assert [p["type"] for _, p in queued_events(svc)] == ["retention.at_risk"]


def test_registry_recovered_names_the_marker_and_the_adopted_jobs(svc: Services) -> None:
    svc.marks.put_marker({"id": "m" * 32, "created_at": "1", "recovered_at": "1764500000.5"})
    events.registry_recovered(svc, [SID, "JS" + "f" * 32])
    ((eid, payload),) = queued_events(svc)
    assert eid == events.event_id("registry.recovered", "m" * 32, "1764500000.5")
    assert payload["data"] == {
        "registry_id": "m" * 32,
        "recovered_at": "2025-11-30T10:53:20Z",
        "adopted_jobs": 2,
        "job_sids": sorted([SID, "JS" + "f" * 32]),
    }


# -- delivery -------------------------------------------------------------------------------------------------


def notify(svc: Services, url: str) -> Any:
    return dataclasses.replace(svc.settings, notify=NotifySettings(url, SECRET))


def test_a_delivery_is_signed_per_standard_webhooks_and_each_attempt_signs_afresh(svc: Services) -> None:
    payload = events.body("job.done", {"job_sid": SID}, clock.utc_now())
    eid = events.event_id("job.done", SID, "1")
    with EventReceiver(SECRET, fail_first=1) as receiver:
        with pytest.raises(events.DeliveryFailed, match="500"):
            events.deliver(notify(svc, receiver.url), eid, payload, final=False)
        assert events.deliver(notify(svc, receiver.url), eid, payload, final=False) == 200
    first, second = receiver.attempts
    assert first.verified and second.verified
    assert first.webhook_id == second.webhook_id == eid and first.body == second.body == payload.encode()
    assert all(abs(int(a.timestamp) - time.time()) < 60 for a in receiver.attempts), "signed when sent"
    assert first.signature.startswith("v1,") and first.headers["content-type"] == "application/json"
    assert receiver.events == {eid: json.loads(payload)}
    assert counted(svc, "job.done", "attempt_failed") == 1 and counted(svc, "job.done", "delivered") == 1


def test_a_delivery_follows_no_redirect_and_no_proxy_from_the_environment(svc: Services, monkeypatch) -> None:
    payload = events.body("job.done", {"job_sid": SID}, clock.utc_now())
    with Tripwire() as elsewhere, Tripwire("127.0.0.3") as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        receiver = EventReceiver(SECRET, redirect_to=f"{elsewhere.url}/steal")
        with receiver, pytest.raises(events.DeliveryFailed, match="307"):
            events.deliver(notify(svc, receiver.url), "evt_" + "1" * 32, payload, final=True)
        assert [a.status for a in receiver.attempts] == [307]
        assert elsewhere.connections == 0 and proxy.connections == 0
    assert counted(svc, "job.done", "failed") == 1
