"""The planner's turn order within a family: accounts alternate, and where the order starts rotates with the UTC
day, so a quota smaller than the number of feeds serves a different account and resource type first each day.
Told by the plan itself (``make_plan``, a pure function of what the planner read)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from app.feeds.planner import PlanInputs, Submission, make_plan
from app.feeds.store import Feed
from app.platform.config import FeedSettings

RTS = ("Calls", "Conferences", "Messages", "Participants")
NOON = datetime(2026, 11, 10, 12, tzinfo=UTC).timestamp()


def inputs(feeds: list[Feed], family_of: dict[str, str] | None = None, used: int = 0) -> PlanInputs:
    family_of = family_of or {f.account: "AC1" for f in feeds}
    return PlanInputs(
        feeds,
        family_of,
        {f.owner: {} for f in feeds},
        {f.owner: False for f in feeds},
        dict.fromkeys(family_of.values(), used),
    )


def order(feeds: list[Feed], days_later: int = 0) -> list[tuple[str, str]]:
    (family,) = make_plan(inputs(feeds), FeedSettings(), 1000, NOON + days_later * 86400).families
    return [(f.account, f.resource_type) for f in family.feeds.values()]


def test_accounts_alternate_in_every_rank():
    feeds = [Feed(rt, "2026-01-01", account=acct) for acct in ("AC1", "AC2") for rt in ("Calls", "Messages")]
    first = order(feeds)
    assert [a for a, _ in first] in (["AC1", "AC2"] * 2, ["AC2", "AC1"] * 2)
    assert sorted(first) == sorted((f.account, f.resource_type) for f in feeds)


def test_each_resource_type_goes_first_on_one_of_four_consecutive_days():
    feeds = [Feed(rt, "2026-01-01", account="AC1") for rt in RTS]
    assert {order(feeds, day)[0][1] for day in range(4)} == set(RTS)
    assert sorted(order(feeds, 1)) == sorted(order(feeds, 0))  # every feed, once


def test_each_account_goes_first_on_one_of_three_consecutive_days():
    feeds = [Feed("Calls", "2026-01-01", account=acct) for acct in ("AC1", "AC2", "AC3")]
    assert {order(feeds, day)[0][0] for day in range(3)} == {"AC1", "AC2", "AC3"}


def test_no_feeds_no_families():
    assert make_plan(inputs([]), FeedSettings(), 1000, NOON).families == []


def test_each_family_spends_its_own_quota_in_equal_shares_newest_first():
    feeds = [Feed(rt, "2026-01-01", account=acct) for acct in ("AC1", "AC2") for rt in ("Calls", "Messages")]
    plan = make_plan(inputs(feeds, {"AC1": "AC1", "AC2": "AC2"}, used=800), FeedSettings(), 1000, NOON)
    newest = date(2026, 11, 8)
    for family in plan.families:
        steps = family.submissions()
        taken = [next(steps), steps.send(True)]
        assert all(isinstance(s, Submission) and s.last == newest for s in taken)
        assert [(s.last - s.first).days + 1 for s in taken] == [100, 100]  # 200 left, two feeds
        assert next(steps, None) is None and family.quota_left == 0


def test_a_refused_feed_sits_out_and_a_spent_quota_stops_the_family():
    feeds = [Feed(rt, "2026-11-01", account="AC1") for rt in ("Calls", "Messages")]
    (family,) = make_plan(inputs(feeds), FeedSettings(), 1000, NOON).families
    steps = family.submissions()
    first = next(steps)
    second = steps.send(False)  # refused: the other feed's turn, the quota untouched
    assert second.feed is not first.feed and family.quota_left == 1000
    assert (first.first, first.last) == (date(2026, 11, 1), date(2026, 11, 8))
    with pytest.raises(StopIteration):
        steps.send(None)  # the quota was spent meanwhile (another submission): the family stops
    assert family.quota_left == 0
