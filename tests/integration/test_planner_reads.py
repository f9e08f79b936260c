"""The planner's cheaper reads and fairer shares (bench/planner.py measured them), in-process against real Redis
and the sandbox: states read without decoding done days, one coverage read when heal settles nothing, and a
day's quota shared by several feeds as one job per feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app import create_app
from app.feeds import planner
from app.feeds.store import CoverageDay, Feed
from app.platform.config import load_settings
from app.twilio.accounts import owner_of
from tests.conftest import make_env

RTS = ("Calls", "Conferences", "Messages", "Participants")


def day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


@pytest.fixture
def svc(redis_url, s3, bucket, sandbox):
    app = create_app(load_settings(make_env(redis_url, s3, bucket, sandbox, "http://127.0.0.1:9")))
    return app.extensions["relay"]


def test_day_states_give_the_states_of_coverage_and_decode_only_days_not_done(svc):
    owner = owner_of("Calls", svc.accounts.primary.sid)
    copied = CoverageDay("copied", "JS1", "k/1", 10, "ab" * 32, 3, "2026-01-01T00:00:00Z")
    svc.feeds.put_days(
        owner,
        {
            day(9): copied,
            day(8): CoverageDay("empty", "JS1"),
            day(7): CoverageDay("failed", "JS2", attempts=5, error="boom"),
            day(6): CoverageDay("retry", "JS2", attempts=1, next_try=123.0),
        },
    )
    svc.feeds.mark_in_flight(owner, "JS3", [day(5), day(9)])  # the Lua script's JSON; the copied day stays
    full, states = svc.feeds.coverage([owner])[owner], svc.feeds.day_states([owner])[owner]
    assert {d: r.state for d, r in states.items()} == {d: r.state for d, r in full.items()}
    assert full[day(9)].key == "k/1" and states[day(9)].key is None  # a done day: its state only
    assert states[day(6)] == full[day(6)] and states[day(6)].next_try == 123.0  # a retry: decoded in full
    assert states[day(5)].job_sid == "JS3" and states[day(7)].error == "boom"


def test_heal_says_whether_it_settled_a_mark(svc):
    owner = owner_of("Calls", svc.accounts.primary.sid)
    svc.feeds.mark_in_flight(owner, "pending:" + "0" * 64, [day(5)])  # a submission that never reached Twilio
    assert planner.heal(svc, svc.feeds, [owner]) is True
    assert day(5) not in svc.feeds.coverage([owner])[owner]
    svc.feeds.put_days(owner, {day(6): CoverageDay("copied")})
    assert planner.heal(svc, svc.feeds, [owner]) is False


def test_a_days_quota_shared_by_four_feeds_is_one_job_per_feed_newest_first(svc, sandbox):
    for rt in RTS:
        svc.feeds.put_feed(
            Feed(rt, day(201), account=svc.accounts.primary.sid)
        )  # 200 days each: 800 wanted, 366 allowed today
    report = planner.plan(svc, svc.feeds)
    assert sorted(rt for rt, _, _ in report.submitted) == sorted(RTS)
    jobs = sandbox.jobs()
    assert len(jobs) == 4 and all(j["end_day"] == day(2) for j in jobs)
    sizes = sorted(
        (datetime.fromisoformat(j["end_day"]) - datetime.fromisoformat(j["start_day"])).days + 1 for j in jobs
    )
    assert sizes == [91, 91, 92, 92] and report.quota_left == 0
    waiting = report.waiting_for_quota
    assert set(waiting) == {owner_of(rt, svc.accounts.primary.sid) for rt in RTS}
    assert sorted(waiting.values()) == [108, 108, 109, 109]  # which two took 92 rotates by UTC day (unit-tested)
