"""The planner's turn order within a family: accounts alternate, and where the order starts rotates with the UTC
day, so a quota smaller than the number of feeds serves a different account and resource type first each day."""

from __future__ import annotations

from app.feeds.planner import _interleaved
from app.feeds.store import Feed

RTS = ("Calls", "Conferences", "Messages", "Participants")


def order(feeds: list[Feed], turn: int) -> list[tuple[str, str]]:
    return [(f.account, f.resource_type) for f in _interleaved(feeds, turn)]


def test_accounts_alternate_in_every_rank():
    feeds = [Feed(rt, "2026-01-01", account=acct) for acct in ("AC1", "AC2") for rt in ("Calls", "Messages")]
    assert order(feeds, 0) == [("AC1", "Calls"), ("AC2", "Calls"), ("AC1", "Messages"), ("AC2", "Messages")]


def test_each_resource_type_goes_first_on_one_of_four_consecutive_days():
    feeds = [Feed(rt, "2026-01-01", account="AC1") for rt in RTS]
    firsts = {order(feeds, day)[0][1] for day in range(739_000, 739_004)}
    assert firsts == set(RTS)
    assert sorted(order(feeds, 739_001)) == sorted(order(feeds, 739_000))  # every feed, once


def test_each_account_goes_first_on_one_of_three_consecutive_days():
    feeds = [Feed("Calls", "2026-01-01", account=acct) for acct in ("AC1", "AC2", "AC3")]
    assert {order(feeds, day)[0][0] for day in range(10, 13)} == {"AC1", "AC2", "AC3"}


def test_no_feeds_no_turns():
    assert _interleaved([], 5) == []
