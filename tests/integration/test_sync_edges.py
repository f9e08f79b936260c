"""Edge cases of sync and copy bookkeeping against real Redis, the sandbox and S3."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import requests

from app.jobs import lifecycle, ownership, submission
from app.jobs.documents import job_view
from app.jobs.records import DayRecord, DayState, JobRecord, JobState, hash_token
from app.jobs.store import job_key
from app.platform.config import load_settings
from app.services import build_services
from app.twilio.client import TwilioRejected
from tests.conftest import make_env
from workers.day_copier import DayTask, copy_one_day
from workers.sink import S3Sink, SinkSettings

PUBLIC = "https://relay.example.com"


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def _sink(svc):
    return S3Sink(svc.s3_client(), SinkSettings(bucket=svc.settings.s3_bucket, prefix="twilio/"))


@pytest.fixture
def svc(redis_url, s3, bucket, sandbox):
    return build_services(load_settings(make_env(redis_url, s3, bucket, sandbox, PUBLIC)))


def test_sync_never_resurrects_a_cancelled_job(svc):
    sid = "JS" + "34" * 16
    svc.jobs.add_job(JobRecord(job_sid=sid, resource_type="Calls", start_day=day(3), end_day=day(3)))
    svc.jobs.finish_job(sid, JobState.CANCELLED)
    assert not svc.jobs.schedule_sync(sid, time.time(), JobState.COPYING)  # a sync that raced the cancel
    assert svc.jobs.get_job(sid).state == JobState.CANCELLED
    assert sid not in svc.jobs.active_jobs()


def test_attempts_cap_fails_the_day_without_copying(svc, s3, bucket, sandbox):
    sid = "JS" + "56" * 16
    svc.jobs.add_job(JobRecord(job_sid=sid, resource_type="Calls", start_day=day(3), end_day=day(3)))
    svc.days.put_day(sid, DayRecord(day=day(3), state=DayState.COPYING, attempts=6, twilio_status="completed"))
    sink = S3Sink(s3.client(), SinkSettings(bucket=bucket, prefix="twilio/"))
    task = DayTask(sid, "Calls", day(3), 10, None, "t1")
    assert copy_one_day(svc, sink, task, lock_seconds=60, max_attempts=6) is None
    rec = svc.days.get_day(sid, day(3))
    assert rec.state == DayState.FAILED and "gave up after 6 attempts" in rec.error
    assert not [r for r in sandbox.requests() if "/Days/" in r["path"]]  # no download was even attempted


def test_ambiguous_create_is_reconciled_by_token(svc, sandbox):
    """Twilio created the job but our create call got no usable answer: the poller adopts it by its token."""
    token = "tok_" + "r" * 40
    svc.tokens.add_pending(hash_token(token), {"resource_type": "Messages", "start_day": day(4), "end_day": day(3)})
    r = requests.post(
        f"{sandbox.api_url}/v1/Exports/Messages/Jobs",
        auth=(sandbox.account_sid, sandbox.auth_token),
        data={
            "StartDay": day(4),
            "EndDay": day(3),
            "FriendlyName": "x",
            "WebhookUrl": ownership.webhook_url(svc, token),
            "WebhookMethod": "POST",
        },
        timeout=10,
    )
    sid = r.json()["job_sid"]
    assert submission.reconcile_pending(svc, older_than=0) == [sid]
    job = svc.jobs.get_job(sid)
    assert job.origin == "api" and job.token_hash == hash_token(token)
    assert svc.tokens.lookup_token(hash_token(token)).target == sid  # its webhook is recognised from now on
    assert submission.reconcile_pending(svc, older_than=0) == []


def test_twilio_404_needs_repeated_answers(svc):
    sid = "JS" + "78" * 16  # unknown to the sandbox
    svc.jobs.add_job(JobRecord(job_sid=sid, resource_type="Calls", start_day=day(3), end_day=day(3)))
    for _ in range(lifecycle.LOST_AFTER_NOT_FOUND - 1):
        assert lifecycle.sync_job(svc, _sink(svc), sid).state == JobState.WAITING
        assert svc.jobs.get_job(sid).state == JobState.WAITING
    assert lifecycle.sync_job(svc, _sink(svc), sid).state == JobState.FAILED
    assert svc.jobs.get_job(sid).error == "job no longer exists at Twilio"


def test_a_webhook_arriving_while_the_sync_runs_makes_it_look_again(svc, sandbox, monkeypatch):
    """The sync read Twilio just before the job completed; the completion webhook found that sync running (so
    queued nothing): the same sync looks again at once instead of leaving the job to the poller's backoff."""
    sandbox.set_scenario(step_seconds=3600)  # "Twilio" is still working on the job
    req = submission.SubmitRequest("Calls", date.fromisoformat(day(4)), date.fromisoformat(day(3)), "race", None)
    job = submission.submit(svc, req).jobs[0]
    svc.rq_connection.hset(svc.enqueuer.sync_key_prefix() + job.job_sid, "status", "started")  # this very sync
    real_fetch = svc.twilio.fetch_job
    fetched: list[bool] = []

    def fetch_then_complete(job_sid: str):
        answer = real_fetch(job_sid)
        fetched.append(all(d.status == "Completed" for d in answer.details))
        if len(fetched) == 1:  # Twilio completes the job and calls back while the sync is still running
            sandbox.complete(job_sid)
            assert svc.tokens.lookup_token(job.token_hash).target == job_sid
            found = svc.jobs.record_delivery(job_sid, svc.enqueuer.sync_key_prefix() + job_sid, True, 60)
            assert found.sync_status == "started"
        return answer

    monkeypatch.setattr(svc.twilio, "fetch_job", fetch_then_complete)
    result = lifecycle.sync_job(svc, _sink(svc), job.job_sid)
    assert fetched == [False, True]
    assert result.twilio_final and result.queued_copies == 2
    assert not svc.jobs.take_resync_request(job.job_sid)  # consumed


def test_a_webhook_before_the_sync_starts_needs_no_second_look(svc, sandbox):
    req = submission.SubmitRequest("Calls", date.fromisoformat(day(3)), date.fromisoformat(day(3)), "queued", None)
    job = submission.submit(svc, req).jobs[0]
    svc.rq_connection.hset(svc.enqueuer.sync_key_prefix() + job.job_sid, "status", "queued")
    svc.jobs.record_delivery(job.job_sid, svc.enqueuer.sync_key_prefix() + job.job_sid, True, 60)
    assert not svc.jobs.take_resync_request(job.job_sid)  # the queued sync will read Twilio afterwards
    svc.rq_connection.hset(svc.enqueuer.sync_key_prefix() + job.job_sid, "status", "started")
    svc.jobs.record_delivery(job.job_sid, svc.enqueuer.sync_key_prefix() + job.job_sid, True, 60)
    svc.jobs.count_sync(job.job_sid)  # a sync starting reads Twilio after that delivery: request cleared
    assert not svc.jobs.take_resync_request(job.job_sid)


def test_a_refused_listday_still_copies_the_day(svc, sandbox, s3, bucket):
    """An account or API key without ListDay: the sync queues the copy without a size and the copy goes ahead
    (it failed every attempt on the refused ListDay before)."""
    sandbox.set_faults(api={"403": 1000, "only": ["ListDay"]})
    req = submission.SubmitRequest("Calls", date.fromisoformat(day(3)), date.fromisoformat(day(3)), "no ListDay", None)
    sid = submission.submit(svc, req).jobs[0].job_sid
    sandbox.complete(sid)
    assert lifecycle.sync_job(svc, _sink(svc), sid).queued_copies == 1
    sink = S3Sink(s3.client(), SinkSettings(bucket=bucket, prefix="twilio/"))
    rec = copy_one_day(svc, sink, DayTask(sid, "Calls", day(3), None, None, "t1"), lock_seconds=60, max_attempts=6)
    assert rec is not None and rec.state == DayState.COPIED
    body = s3.client().get_object(Bucket=bucket, Key=rec.key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sandbox.expected_day("Calls", day(3))["sha256"]
    assert {r["status"] for r in sandbox.requests() if r["operation"] == "ListDay"} == {403}


def test_a_sync_twilio_refuses_is_visible_on_the_job_and_backs_off(svc, sandbox):
    """A 403 (key permissions changed) or an unreadable answer must not fail the sync every poll unnoticed."""
    req = submission.SubmitRequest("Calls", date.fromisoformat(day(3)), date.fromisoformat(day(3)), "refused", None)
    sid = submission.submit(svc, req).jobs[0].job_sid
    sandbox.set_faults(api={"403": 1, "only": ["FetchJob"]})
    with pytest.raises(TwilioRejected):
        lifecycle.sync_job(svc, _sink(svc), sid)
    view = job_view(svc.days, svc.jobs.get_job(sid))
    assert "403" in view["last_sync_error"] and view["state"] == "waiting"
    assert sid not in svc.jobs.due_jobs()  # backed off: the poller does not hammer a refusing Twilio
    lifecycle.sync_job(svc, _sink(svc), sid)  # the fault is spent: Twilio answers again
    assert job_view(svc.days, svc.jobs.get_job(sid))["last_sync_error"] is None


def test_a_404_is_never_counted_twice_in_one_sync(svc, monkeypatch):
    """The re-sync for a webhook that arrived meanwhile must not turn one sync into several 404 strikes."""
    sid = "JS" + "9a" * 16  # unknown to the sandbox: 404
    svc.jobs.add_job(JobRecord(job_sid=sid, resource_type="Calls", start_day=day(3), end_day=day(3)))
    real_fetch = svc.twilio.fetch_job

    def webhook_meanwhile(job_sid: str):
        svc.jobs.r.hset(job_key(job_sid), "resync", "1")  # as a webhook would (JobStore.record_delivery)
        return real_fetch(job_sid)

    monkeypatch.setattr(svc.twilio, "fetch_job", webhook_meanwhile)
    assert lifecycle.sync_job(svc, _sink(svc), sid).state == JobState.WAITING
    assert svc.jobs.get_job(sid).not_found == 1
