"""The daily quota and the locks across processes, against a real Redis, including under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from app.platform.errors import QuotaExceeded
from app.platform.locks import LockStore
from app.platform.quota import QuotaStore


@pytest.fixture
def quota(redis_url):
    return QuotaStore(redis.Redis.from_url(redis_url, decode_responses=True))


@pytest.fixture
def locks(redis_url):
    return LockStore(redis.Redis.from_url(redis_url, decode_responses=True))


def test_quota_is_atomic_under_concurrency(quota):
    def take(_: int) -> bool:
        try:
            quota.reserve("2026-11-29", 10)
            return True
        except QuotaExceeded:
            return False

    with ThreadPoolExecutor(16) as pool:
        granted = sum(pool.map(take, range(60)))
    assert granted == 36  # 36 x 10 = 360 <= 366 < 370
    assert quota.used("2026-11-29") == 360
    with pytest.raises(QuotaExceeded, match="360 already requested"):
        quota.reserve("2026-11-29", 7)
    quota.reserve("2026-11-29", 6)
    assert quota.expires_in("2026-11-29") > 0  # expires: nothing unbounded


def test_copy_lock_owner_only_release(locks):
    assert locks.acquire_copy_lock("Calls", "2026-11-01", "a", 60)
    assert not locks.acquire_copy_lock("Calls", "2026-11-01", "b", 60)
    locks.release_copy_lock("Calls", "2026-11-01", "b")  # not the owner: no effect
    assert not locks.acquire_copy_lock("Calls", "2026-11-01", "b", 60)
    locks.release_copy_lock("Calls", "2026-11-01", "a")
    assert locks.acquire_copy_lock("Calls", "2026-11-01", "b", 60)
