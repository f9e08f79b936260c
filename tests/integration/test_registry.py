"""The registry's atomic operations against a real Redis, including under concurrency."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from app.jobs.records import DayRecord, DayState, JobRecord, JobState
from app.jobs.registry import QuotaExceeded, Registry

SID = "JS" + "12" * 16


@pytest.fixture
def registry(redis_url):
    return Registry(redis.Redis.from_url(redis_url, decode_responses=True), retention_days=1)


def job(**kw) -> JobRecord:
    return JobRecord(job_sid=SID, resource_type="Calls", start_day="2026-11-01", end_day="2026-11-02", **kw)


def test_quota_is_atomic_under_concurrency(registry):
    def take(_: int) -> bool:
        try:
            registry.reserve_quota("2026-11-29", 10)
            return True
        except QuotaExceeded:
            return False

    with ThreadPoolExecutor(16) as pool:
        granted = sum(pool.map(take, range(60)))
    assert granted == 36  # 36 x 10 = 360 <= 366 < 370
    assert registry.quota_used("2026-11-29") == 360
    with pytest.raises(QuotaExceeded, match="360 already requested"):
        registry.reserve_quota("2026-11-29", 7)
    registry.reserve_quota("2026-11-29", 6)
    assert registry.r.ttl("ber:quota:2026-11-29") > 0  # expires: nothing unbounded


def test_add_job_once_and_token_mapping(registry):
    assert registry.add_job(job(token_hash="h1"))
    assert not registry.add_job(job(token_hash="h2"))
    assert registry.lookup_token("h1")[:3] == (SID, False, False)
    assert registry.lookup_token("h2")[:3] == (None, False, False)
    registry.add_pending("h3", {"resource_type": "Calls"})
    assert registry.lookup_token("h3")[:3] == (None, True, False)
    counted = [registry.record_delivery(SID, f"rq:job:sync-{SID}", True, 60).number for _ in range(2)]
    assert counted == [1, 2] and registry.get_job(SID).webhooks_received == 2
    assert registry.lookup_token("h1").signed_seen  # a signed delivery was recorded
    assert registry.get_job(SID).state == JobState.WAITING
    assert registry.due_jobs(now=time.time() + 61) == [SID]  # the second delivery was throttled: due later


def test_webhook_syncs_are_rate_limited_per_job_and_deferred_to_the_poller(registry):
    registry.add_job(job(token_hash="h1"))
    first = registry.record_delivery(SID, f"rq:job:sync-{SID}", False, 60)
    second = registry.record_delivery(SID, f"rq:job:sync-{SID}", False, 60)
    assert (first.may_sync, second.may_sync) == (True, False)
    assert not registry.lookup_token("h1").signed_seen  # unsigned deliveries do not count as signed
    assert registry.due_jobs(now=time.time() + 30) == []  # deferred to when the limit ends...
    assert registry.due_jobs(now=time.time() + 61) == [SID]  # ...not dropped


def test_claim_day_is_exclusive_and_never_reclaims_a_copied_day(registry):
    registry.add_job(job())
    registry.ensure_days(SID, [DayRecord(day="2026-11-01")])
    assert registry.claim_day(SID, "2026-11-01") == DayState.PENDING
    rec = registry.get_day(SID, "2026-11-01")
    assert rec.state == DayState.COPYING and rec.attempts == 1
    rec.state = DayState.COPIED
    registry.put_day(SID, rec)
    assert registry.claim_day(SID, "2026-11-01") == DayState.COPIED
    assert registry.get_day(SID, "2026-11-01").state == DayState.COPIED


def test_ensure_days_never_overwrites_progress(registry):
    registry.put_day(SID, DayRecord(day="2026-11-01", state=DayState.COPIED, key="k"))
    registry.ensure_days(SID, [DayRecord(day="2026-11-01"), DayRecord(day="2026-11-02")])
    days = registry.get_days(SID)
    assert days["2026-11-01"].state == DayState.COPIED and days["2026-11-02"].state == DayState.PENDING


def test_finish_job_exactly_once_with_retention(registry):
    registry.add_job(job(token_hash="h1"))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: registry.finish_job(SID, JobState.DONE), range(20)))
    assert results.count(True) == 1
    assert registry.get_job(SID).state == JobState.DONE
    assert registry.due_jobs() == []
    assert 0 < registry.r.ttl(registry.job_key(SID)) <= 86400
    assert 0 < registry.r.ttl("ber:token:h1") <= 86400
    registry.reopen_job(SID)
    assert registry.get_job(SID).state == JobState.COPYING and registry.r.ttl(registry.job_key(SID)) == -1


def test_copy_lock_owner_only_release(registry):
    assert registry.acquire_copy_lock("Calls", "2026-11-01", "a", 60)
    assert not registry.acquire_copy_lock("Calls", "2026-11-01", "b", 60)
    registry.release_copy_lock("Calls", "2026-11-01", "b")  # not the owner: no effect
    assert not registry.acquire_copy_lock("Calls", "2026-11-01", "b", 60)
    registry.release_copy_lock("Calls", "2026-11-01", "a")
    assert registry.acquire_copy_lock("Calls", "2026-11-01", "b", 60)


def test_list_jobs_pages_newest_first(registry):
    for i in range(5):
        registry.add_job(
            JobRecord(
                job_sid=f"JS{i:032x}",
                resource_type="Calls",
                start_day="2026-11-01",
                end_day="2026-11-01",
                created_at=1000 + i,
            )
        )
    page, total = registry.list_jobs(offset=0, limit=2)
    assert total == 5 and [j.job_sid for j in page] == [f"JS{4:032x}", f"JS{3:032x}"]


def test_list_jobs_of_one_account_pages_its_jobs_newest_first(redis_url):
    primary, sub = "AC" + "1" * 32, "AC" + "2" * 32
    registry = Registry(redis.Redis.from_url(redis_url, decode_responses=True), default_account=primary)
    for i in range(7):  # even: the subaccount's; odd: the primary's (recorded without an account: older records)
        owner = sub if i % 2 == 0 else ""
        registry.add_job(
            JobRecord(f"JS{i:032x}", "Calls", "2026-11-01", "2026-11-01", account_sid=owner, created_at=1000 + i)
        )
    page, total = registry.list_jobs(offset=1, limit=2, account_sid=sub)
    assert total == 4 and [j.job_sid for j in page] == [f"JS{4:032x}", f"JS{2:032x}"]
    page, total = registry.list_jobs(offset=0, limit=10, account_sid=primary)
    assert total == 3 and [j.job_sid for j in page] == [f"JS{i:032x}" for i in (5, 3, 1)]
    assert registry.list_jobs(account_sid="AC" + "3" * 32) == ([], 0)


def test_all_days_final_needs_a_final_record_for_every_listed_day(registry):
    days = [f"2026-{m:02d}-{d:02d}" for m in (1, 2, 3, 4) for d in range(1, 29)] * 10  # > 1000: chunked calls
    assert not registry.all_days_final(SID, ["2026-01-01"])  # no record at all
    registry.ensure_days(SID, [DayRecord(day=d) for d in sorted(set(days))])
    assert not registry.all_days_final(SID, days)  # pending
    for i, d in enumerate(sorted(set(days))):
        state = (DayState.COPIED, DayState.EMPTY, DayState.FAILED)[i % 3]
        registry.put_day(SID, DayRecord(day=d, state=state))
    assert registry.all_days_final(SID, days)
    registry.put_day(SID, DayRecord(day="2026-04-28", state=DayState.COPYING))
    assert not registry.all_days_final(SID, days)
    registry.put_day(SID, DayRecord(day="2026-04-28", state=DayState.COPIED))
    assert registry.all_days_final(SID, days)
    assert not registry.all_days_final(SID, [*days, "2026-05-01"])  # a day of the range not seen yet


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
    reg = Registry(client, retention_days=1)
    other = JobRecord(job_sid="JS" + "34" * 16, resource_type="Calls", start_day="2026-11-01", end_day="2026-11-01")
    reg.add_job(other)  # loads both scripts into a Redis that may not have them yet
    reg.finish_job(other.job_sid, JobState.DONE)
    client.sent.clear()
    assert reg.add_job(job(token_hash="h10"))
    assert client.sent == ["EVALSHA"]
    client.sent.clear()
    assert reg.finish_job(SID, JobState.DONE)
    assert client.sent == ["HGETALL", "EVALSHA"]  # read the token's key name, then one atomic script
    assert reg.get_job(SID).state == JobState.DONE and SID not in reg.active_jobs()
