"""The job stores' atomic operations (jobs, days, webhook tokens) against a real Redis, including under
concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from app.jobs.days import DayStore
from app.jobs.records import DayRecord, DayState, JobRecord, JobState
from app.jobs.store import JobStore
from app.jobs.tokens import TokenStore

SID = "JS" + "12" * 16


@pytest.fixture
def client(redis_url):
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def jobs(client):
    return JobStore(client, retention_days=1)


@pytest.fixture
def days(client):
    return DayStore(client)


@pytest.fixture
def tokens(client):
    return TokenStore(client)


def job(**kw) -> JobRecord:
    return JobRecord(job_sid=SID, resource_type="Calls", start_day="2026-11-01", end_day="2026-11-02", **kw)


def test_add_job_once_and_token_mapping(jobs, tokens):
    assert jobs.add_job(job(token_hash="h1"))
    assert not jobs.add_job(job(token_hash="h2"))
    assert tokens.lookup_token("h1")[:3] == (SID, False, False)
    assert tokens.lookup_token("h2")[:3] == (None, False, False)
    tokens.add_pending("h3", {"resource_type": "Calls"})
    assert tokens.lookup_token("h3")[:3] == (None, True, False)
    counted = [jobs.record_delivery(SID, f"rq:job:sync-{SID}", True, 60).number for _ in range(2)]
    assert counted == [1, 2] and jobs.get_job(SID).webhooks_received == 2
    assert tokens.lookup_token("h1").signed_seen  # a signed delivery was recorded
    assert jobs.get_job(SID).state == JobState.WAITING
    assert jobs.due_jobs(now=time.time() + 61) == [SID]  # the second delivery was throttled: due later


def test_webhook_syncs_are_rate_limited_per_job_and_deferred_to_the_poller(jobs, tokens):
    jobs.add_job(job(token_hash="h1"))
    first = jobs.record_delivery(SID, f"rq:job:sync-{SID}", False, 60)
    second = jobs.record_delivery(SID, f"rq:job:sync-{SID}", False, 60)
    assert (first.may_sync, second.may_sync) == (True, False)
    assert not tokens.lookup_token("h1").signed_seen  # unsigned deliveries do not count as signed
    assert jobs.due_jobs(now=time.time() + 30) == []  # deferred to when the limit ends...
    assert jobs.due_jobs(now=time.time() + 61) == [SID]  # ...not dropped


def test_claim_day_is_exclusive_and_never_reclaims_a_copied_day(jobs, days):
    jobs.add_job(job())
    days.ensure_days(SID, [DayRecord(day="2026-11-01")])
    assert days.claim_day(SID, "2026-11-01") == DayState.PENDING
    rec = days.get_day(SID, "2026-11-01")
    assert rec.state == DayState.COPYING and rec.attempts == 1
    rec.state = DayState.COPIED
    days.put_day(SID, rec)
    assert days.claim_day(SID, "2026-11-01") == DayState.COPIED
    assert days.get_day(SID, "2026-11-01").state == DayState.COPIED


def test_ensure_days_never_overwrites_progress(days):
    days.put_day(SID, DayRecord(day="2026-11-01", state=DayState.COPIED, key="k"))
    days.ensure_days(SID, [DayRecord(day="2026-11-01"), DayRecord(day="2026-11-02")])
    found = days.get_days(SID)
    assert found["2026-11-01"].state == DayState.COPIED and found["2026-11-02"].state == DayState.PENDING


def test_finish_job_exactly_once_with_retention(jobs, tokens):
    jobs.add_job(job(token_hash="h1"))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: jobs.finish_job(SID, JobState.DONE), range(20)))
    assert results.count(True) == 1
    assert jobs.get_job(SID).state == JobState.DONE
    assert jobs.due_jobs() == []
    assert 0 < jobs.job_ttl(SID) <= 86400
    assert 0 < tokens.token_ttl("h1") <= 86400
    jobs.reopen_job(SID)
    assert jobs.get_job(SID).state == JobState.COPYING and jobs.job_ttl(SID) == -1


def test_list_jobs_pages_newest_first(jobs):
    for i in range(5):
        jobs.add_job(
            JobRecord(
                job_sid=f"JS{i:032x}",
                resource_type="Calls",
                start_day="2026-11-01",
                end_day="2026-11-01",
                created_at=1000 + i,
            )
        )
    page, total = jobs.list_jobs(offset=0, limit=2)
    assert total == 5 and [j.job_sid for j in page] == [f"JS{4:032x}", f"JS{3:032x}"]


def test_list_jobs_of_one_account_pages_its_jobs_newest_first(redis_url):
    primary, sub = "AC" + "1" * 32, "AC" + "2" * 32
    jobs = JobStore(redis.Redis.from_url(redis_url, decode_responses=True), default_account=primary)
    for i in range(7):  # even: the subaccount's; odd: the primary's (recorded without an account: older records)
        owner = sub if i % 2 == 0 else ""
        jobs.add_job(
            JobRecord(f"JS{i:032x}", "Calls", "2026-11-01", "2026-11-01", account_sid=owner, created_at=1000 + i)
        )
    page, total = jobs.list_jobs(offset=1, limit=2, account_sid=sub)
    assert total == 4 and [j.job_sid for j in page] == [f"JS{4:032x}", f"JS{2:032x}"]
    page, total = jobs.list_jobs(offset=0, limit=10, account_sid=primary)
    assert total == 3 and [j.job_sid for j in page] == [f"JS{i:032x}" for i in (5, 3, 1)]
    assert jobs.list_jobs(account_sid="AC" + "3" * 32) == ([], 0)


def test_all_days_final_needs_a_final_record_for_every_listed_day(days):
    listed = [f"2026-{m:02d}-{d:02d}" for m in (1, 2, 3, 4) for d in range(1, 29)] * 10  # > 1000: chunked calls
    assert not days.all_days_final(SID, ["2026-01-01"])  # no record at all
    days.ensure_days(SID, [DayRecord(day=d) for d in sorted(set(listed))])
    assert not days.all_days_final(SID, listed)  # pending
    for i, d in enumerate(sorted(set(listed))):
        state = (DayState.COPIED, DayState.EMPTY, DayState.FAILED)[i % 3]
        days.put_day(SID, DayRecord(day=d, state=state))
    assert days.all_days_final(SID, listed)
    days.put_day(SID, DayRecord(day="2026-04-28", state=DayState.COPYING))
    assert not days.all_days_final(SID, listed)
    days.put_day(SID, DayRecord(day="2026-04-28", state=DayState.COPIED))
    assert days.all_days_final(SID, listed)
    assert not days.all_days_final(SID, [*listed, "2026-05-01"])  # a day of the range not seen yet


class CountingRedis(redis.Redis):
    """Records every command sent (a pipeline would count as its commands' names too)."""

    sent: list[str]

    def execute_command(self, *args, **options):
        self.sent.append(str(args[0]))
        return super().execute_command(*args, **options)


def test_add_job_and_finish_job_are_one_atomic_round_trip_each(redis_url):
    """Issue 12: they used to be two steps, and a failure between them left a stub that blocked the sid for good.
    Each is now one script: there is no "between" (its first send may load the script, EVALSHA then EVAL)."""
    client = CountingRedis.from_url(redis_url, decode_responses=True)
    client.sent = []
    reg = JobStore(client, retention_days=1)
    other = JobRecord(job_sid="JS" + "34" * 16, resource_type="Calls", start_day="2026-11-01", end_day="2026-11-01")
    reg.add_job(other)  # loads both scripts into a Redis that may not have them yet
    reg.finish_job(other.job_sid, JobState.DONE)
    client.sent.clear()
    assert reg.add_job(job(token_hash="h10"))
    assert client.sent == ["EVALSHA"]
    client.sent.clear()
    assert reg.finish_job(SID, JobState.DONE)
    assert client.sent == ["HMGET", "EVALSHA"]  # read the token's key name (two fields), then one atomic script
    assert reg.get_job(SID).state == JobState.DONE and SID not in reg.active_jobs()
