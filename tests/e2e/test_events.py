"""Outbound events end to end: web, RQ worker and poller processes POST every kind of event to a receiver on
loopback that verifies each signature with the ``standardwebhooks`` library and fails the first attempts of every
event (500). The relay retries with the same webhook-id and body; after deduplication by webhook-id the receiver
holds each event exactly once, even when Redis loses the relay's claims and the poller announces a still-lagging
feed again."""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import requests

from app.jobs.days import DayStore
from app.jobs.records import DayRecord, DayState, JobRecord
from app.jobs.store import JobStore
from devstack.procs import wait_until
from tests.event_receiver import EventReceiver

pytestmark = pytest.mark.e2e

SECRET = "whsec_" + base64.b64encode(b"relay-e2e-events-signing-key-32b").decode()
FAIL_FIRST = 2
AT_RISK_SID = "JS" + "a7" * 16


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def submit(stack: Any, offset: int) -> str:
    r = stack.api(
        "POST", "/api/jobs", json={"resource_type": "Calls", "start_day": day(offset), "end_day": day(offset)}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["job_sid"])


def seed_day_near_deletion(redis_url: str) -> None:
    """A job whose day Twilio made 6 days ago and that is still being copied: what the poller's retention check is
    for. Its next sync is an hour away, so only the retention check looks at it."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    jobs, days = JobStore(client), DayStore(client)
    made = (datetime.now(UTC) - timedelta(days=6)).isoformat().replace("+00:00", "Z")
    job = JobRecord(job_sid=AT_RISK_SID, resource_type="Conferences", start_day=day(8), end_day=day(8))
    assert jobs.add_job(job)
    rec = DayRecord(day=day(8), state=DayState.COPYING, twilio_status="completed", twilio_create_date=made)
    days.put_day(AT_RISK_SID, rec)
    jobs.schedule_sync(AT_RISK_SID, time.time() + 3600)


def events_by(receiver: EventReceiver) -> dict[tuple[str, str], list[str]]:
    """(type, subject) -> the webhook-ids delivered for it (after deduplication)."""
    subjects = {"job": "job_sid", "day": "job_sid", "retention": "job_sid", "feed": "resource_type"}
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for wid, event in list(receiver.events.items()):
        key = subjects.get(event["type"].split(".")[0])
        out[(event["type"], event["data"][key] if key else "")].append(wid)
    return out


def test_every_event_is_signed_retried_with_its_id_and_seen_once(make_stack, sandbox, redis_url, redis_server):
    with EventReceiver(SECRET, fail_first=FAIL_FIRST) as receiver:
        stack = make_stack(
            workers=1,
            poller=True,
            NOTIFY_URL=receiver.url,
            NOTIFY_SECRET=SECRET,
            NOTIFY_RETRY_INTERVALS="1,1,1,1",
            COPY_RETRY_INTERVALS="1,1",
            SYNC_FEEDS=f"Messages:{day(10)}",  # nothing copied yet: 9 days behind,
            TWILIO_DAILY_DAY_QUOTA="20",
            FEED_QUOTA_RESERVE_DAYS="20",  # ... and it stays so: the quota is kept for the jobs below
        )
        done_sid = submit(stack, 3)
        assert stack.wait_job(done_sid)["state"] == "done"
        sandbox.set_faults(files={"500": 1000})  # every download fails: the day fails after its retries
        failed_sid = submit(stack, 4)
        assert stack.wait_job(failed_sid, timeout=120)["state"] == "failed"
        sandbox.set_faults()
        seed_day_near_deletion(redis_url)
        expected = {
            ("job.done", done_sid),
            ("day.failed", failed_sid),
            ("job.failed", failed_sid),
            ("feed.lagging", "Messages"),
            ("retention.at_risk", AT_RISK_SID),
        }
        wait_until(lambda: expected <= set(events_by(receiver)), timeout=90, what=f"events {sorted(expected)}")

        # Redis loses everything, the relay's event claims included: the poller rebuilds the registry (announced),
        # finishes the rebuilt done job again and finds the feed still lagging on the same UTC day: both events are
        # emitted again, with the same ids, and the receiver drops them as duplicates.
        again = [events_by(receiver)[key][0] for key in (("feed.lagging", "Messages"), ("job.done", done_sid))]
        redis_server.client().flushall()
        wait_until(lambda: receiver.of_type("registry.recovered"), timeout=90, what="registry.recovered")
        wait_until(
            lambda: all(sum(a.webhook_id == wid and a.status == 200 for a in receiver.attempts) == 2 for wid in again),
            timeout=90,
            what="the lagging feed and the done job announced again after the claims were lost",
        )

    delivered = events_by(receiver)
    for key in expected:
        assert len(delivered[key]) == 1, (key, delivered[key])  # exactly once after deduplication
    (recovered,) = receiver.of_type("registry.recovered")
    assert recovered["data"]["adopted_jobs"] >= 2 and {done_sid, failed_sid} <= set(recovered["data"]["job_sids"])
    assert all(a.verified for a in receiver.attempts), "every delivery carries a valid Standard Webhooks signature"
    by_id: dict[str, list[Any]] = defaultdict(list)
    for attempt in receiver.attempts:
        by_id[attempt.webhook_id].append(attempt)
    for wid, attempts in by_id.items():
        statuses = [a.status for a in attempts]
        if wid not in receiver.events:  # emitted after the recovery, still being retried when the test ended
            assert statuses == [500] * len(statuses) and len(statuses) <= FAIL_FIRST, (wid, statuses)
            continue
        assert statuses[: FAIL_FIRST + 1] == [500] * FAIL_FIRST + [200], (wid, statuses)  # retried until accepted
        assert len({a.body for a in attempts[: FAIL_FIRST + 1]}) == 1, "every retry sends the same body"
        assert json.loads(attempts[0].body)["type"] == receiver.events[wid]["type"]
    failed = receiver.events[delivered[("job.failed", failed_sid)][0]]["data"]
    assert failed["failed_days"] == [day(4)] and failed["state"] == "failed"
    lag = receiver.events[again[0]]["data"]
    assert lag["lag_days"] > 2 and lag["waiting_for_quota"] > 0
    metrics = requests.get(f"{stack.url}/metrics", timeout=10).text
    assert 'relay_events_total{outcome="delivered",type="registry.recovered"}' in metrics
