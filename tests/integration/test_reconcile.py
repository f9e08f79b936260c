"""Coverage reconciled with the bucket (SeaweedFS, real Redis): days found in S3 are recorded, days gone from S3
are dropped (and planned again), and a day the listing does not show but a HEAD finds is never dropped, since
dropping it would export it again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app import clock, coverage
from app.config import load_settings
from app.context import Services, build_services
from app.feed_store import CoverageDay, owner_of
from tests.conftest import make_env
from workers.s3_sink import S3Sink, SinkSettings

RT = "Calls"


def day(days_ago: int) -> str:
    return (clock.utc_today() - timedelta(days=days_ago)).isoformat()


@pytest.fixture
def svc(redis_url, s3, bucket, sandbox) -> Services:
    return build_services(load_settings(make_env(redis_url, s3, bucket, sandbox, "http://127.0.0.1:9")))


@pytest.fixture
def sink(s3, bucket) -> S3Sink:
    return S3Sink(s3.client(), SinkSettings(bucket=bucket, prefix="twilio/"))


class LaggingListing:
    """The real bucket, but a listing that does not show the newest objects yet (some S3 servers list new
    objects late; SeaweedFS cannot be made to on demand): ``day_index`` leaves out ``hidden`` days."""

    def __init__(self, sink: S3Sink, hidden: set[str]) -> None:
        self.sink, self.hidden = sink, hidden

    def day_index(self, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int]]:
        listed = self.sink.day_index(resource_type, account_sid)
        return {d: v for d, v in listed.items() if d not in self.hidden}

    def holds(self, key: str) -> bool:
        return self.sink.holds(key)


def put_day(s3: Any, bucket: str, sink: S3Sink, iso: str) -> str:
    key = sink.day_key(RT, iso, "JS" + "0" * 32)
    s3.client().put_object(Bucket=bucket, Key=key, Body=b"x")
    return key


def long_ago() -> float:
    return clock.now() - coverage.LISTING_LAG_SECONDS - 60


def test_days_in_s3_are_found_and_days_gone_from_s3_are_dropped(svc, s3, bucket, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    key = put_day(s3, bucket, sink, day(5))
    gone = CoverageDay("copied", "JS1", sink.day_key(RT, day(6), "JS1"), 1, updated_at=long_ago())
    svc.feeds.put_days(owner, {day(6): gone})
    assert coverage.reconcile(svc.feeds, sink, RT, svc.accounts.primary.sid) == (1, 1)
    cov = svc.feeds.coverage([owner])[owner]
    assert cov[day(5)].state == "copied" and cov[day(5)].key == key
    assert day(6) not in cov  # missing again: the planner asks Twilio for it


def test_a_day_the_listing_does_not_show_yet_is_kept_when_its_object_is_there(svc, s3, bucket, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    key = put_day(s3, bucket, sink, day(5))
    svc.feeds.put_days(owner, {day(5): CoverageDay("copied", "JS1", key, 1, updated_at=long_ago())})
    assert coverage.reconcile(svc.feeds, LaggingListing(sink, {day(5)}), RT, svc.accounts.primary.sid) == (0, 0)
    assert svc.feeds.coverage([owner])[owner][day(5)].state == "copied"


def test_a_recently_copied_day_is_not_dropped_even_when_absent(svc, sink):
    owner = owner_of(RT, svc.accounts.primary.sid)
    recent = CoverageDay("copied", "JS1", sink.day_key(RT, day(7), "JS1"), 1)  # recorded now
    svc.feeds.put_days(owner, {day(7): recent})
    assert coverage.reconcile(svc.feeds, sink, RT, svc.accounts.primary.sid) == (0, 0)
    assert svc.feeds.coverage([owner])[owner][day(7)].state == "copied"
