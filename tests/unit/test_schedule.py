"""When a feed's reconcile and sweep tasks fall due: at once the first time, then at the feed's own phase of the
interval, so many feeds created together spread over the interval instead of all landing in one poll."""

from __future__ import annotations

import itertools

from app.feeds.schedule import due

EVERY = 300


def slots(owner: str, start: float, polls: int, poll_every: float = 60) -> list[float]:
    """The poll times at which ``owner`` runs, polling every ``poll_every`` s from ``start`` (run when due)."""
    last, ran = None, []
    for i in range(polls):
        now = start + i * poll_every
        if due(last, EVERY, owner, now):
            last = now
            ran.append(now)
    return ran


def test_a_feed_never_run_is_due_at_once():
    assert due(None, EVERY, "AC1:Calls", now=0)


def test_after_its_first_run_a_feed_reaches_its_phase_then_runs_once_per_interval():
    for owner in (f"AC{i}:Calls" for i in range(20)):
        ran = slots(owner, 1_000_000, polls=60)  # an hour of polls, one a minute
        assert ran[0] == 1_000_000
        assert all(EVERY / 2 <= b - a <= EVERY for a, b in itertools.pairwise(ran[:3]))  # moving onto its phase
        assert all(b - a == EVERY for a, b in itertools.pairwise(ran[2:]))  # then once per interval


def test_feeds_created_together_spread_over_the_interval():
    owners = [f"AC{i}:Calls" for i in range(200)]
    later = {owner: slots(owner, 1_000_000, polls=30)[2] % EVERY for owner in owners}  # third run: in phase
    per_poll = {t: sum(1 for v in later.values() if v == t) for t in set(later.values())}
    assert len(per_poll) == EVERY // 60  # every poll of the interval takes some
    assert max(per_poll.values()) < len(owners) / 2  # not all (nor most) in the same poll


def test_runs_are_between_half_an_interval_and_one_interval_apart():
    for owner in (f"AC{i}:Messages" for i in range(50)):
        for last in (1000.0, 1234.5, 99_999.0):
            assert not due(last, EVERY, owner, now=last + EVERY / 2 - 1)
            assert due(last, EVERY, owner, now=last + EVERY)  # a daily reconcile stays at least daily
