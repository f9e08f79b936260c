"""The poller task in process (as an RQ worker runs it) against real Redis and the sandbox."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from rq import Queue

from app.jobs.records import JobRecord, hash_token
from app.jobs.tokens import pending_key
from app.platform.locks import POLL_LOCK, lock_key
from app.platform.metrics import cluster_counts
from app.platform.queueing import CONTROL_QUEUE
from app.services import worker_services
from tests.conftest import make_env
from workers import tasks


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture
def svc(redis_url, s3, bucket, sandbox, monkeypatch):
    for name, value in make_env(redis_url, s3, bucket, sandbox, "https://relay.example.com").items():
        monkeypatch.setenv(name, value)
    worker_services.cache_clear()
    yield worker_services()
    worker_services.cache_clear()


def track_due_job(svc, sid: str) -> None:
    svc.jobs.add_job(JobRecord(job_sid=sid, resource_type="Calls", start_day=day(3), end_day=day(3)))


def test_a_failing_reconcile_does_not_stop_the_poll(svc, sandbox):
    """Twilio failing to list jobs (needed only for ambiguous submissions) must not starve every due job."""
    svc.tokens.add_pending(hash_token("tok_" + "p" * 40), {"resource_type": "Calls"})
    svc.tokens.r.hset(pending_key(hash_token("tok_" + "p" * 40)), "created_at", str(time.time() - 3600))
    track_due_job(svc, "JS" + "aa" * 16)
    sandbox.set_faults(api={"403": 1000, "only": ["ListExportCustomJob"]})
    assert tasks.poll_task() == {"queued": 1}
    assert Queue(CONTROL_QUEUE, connection=svc.rq_connection).job_ids == ["sync-JS" + "aa" * 16]
    assert svc.marks.last_poll() is not None
    assert svc.locks.holder(POLL_LOCK) is None
    assert cluster_counts().get("relay_polls|outcome=reconcile_failed") == 1


def test_a_poll_skips_while_another_runs_and_leaves_its_lock_alone(svc):
    track_due_job(svc, "JS" + "bb" * 16)
    assert svc.locks.acquire("poll", "another-poll", 300)
    assert tasks.poll_task() == {"queued": 0}
    assert svc.locks.holder(POLL_LOCK) == "another-poll"  # not deleted by the poll that skipped
    svc.locks.release("poll", "another-poll")
    assert tasks.poll_task() == {"queued": 1}


def test_a_poll_that_overran_its_lock_does_not_free_the_next_polls(svc, monkeypatch):
    """The lock expired mid-poll and another poll took it: finishing must not delete that poll's lock."""
    track_due_job(svc, "JS" + "cc" * 16)
    prune = svc.jobs.prune_jobs

    def lock_expires_and_is_retaken(*args, **kwargs):
        svc.locks.r.set(lock_key(POLL_LOCK), "the-next-poll", ex=300)  # expired, and taken
        return prune(*args, **kwargs)

    monkeypatch.setattr(svc.jobs, "prune_jobs", lock_expires_and_is_retaken)
    assert tasks.poll_task() == {"queued": 1}
    assert svc.locks.holder(POLL_LOCK) == "the-next-poll"


def test_the_janitor_probes_the_store_again_once_its_findings_are_gone(svc):
    """/health and /readyz read the store probe's cached findings (app/bucket/probe.py): the hourly janitor keeps
    them there, whether they expired or were lost with Redis."""
    s = svc.settings
    tasks.janitor_task()
    assert svc.probes.cached_findings(svc.s3_client(), s.s3_bucket) is not None
    svc.jobs.r.flushall()  # Redis lost (or the findings expired)
    tasks.janitor_task()
    assert svc.probes.cached_findings(svc.s3_client(), s.s3_bucket) is not None
