"""When a feed's reconcile and sweep tasks fall due: at once the first time, then at the feed's own phase of the
interval, so many feeds created together spread over the interval instead of all landing in one poll."""

from __future__ import annotations

import itertools

from workers.tasks import _due

EVERY = 300


def slots(owner: str, start: float, polls: int, poll_every: float = 60) -> list[float]:
    """The poll times at which ``owner`` runs, polling every ``poll_every`` s from ``start`` (run when due)."""
    last, ran = None, []
    for i in range(polls):
        now = start + i * poll_every
        if _due(last, EVERY, owner, now):
            last = now
            ran.append(now)
    return ran


def test_a_feed_never_run_is_due_at_once():
    assert _due(None, EVERY, "AC1:Calls", now=0)


def test_after_its_first_run_a_feed_runs_once_per_interval():
    ran = slots("AC1:Calls", 1_000_000, polls=60)  # an hour of polls, one a minute
    assert ran[0] == 1_000_000
    gaps = [b - a for a, b in itertools.pairwise(ran[1:])]
    assert gaps and all(g == EVERY for g in gaps)
    assert EVERY / 2 <= ran[1] - ran[0] < 1.5 * EVERY  # the first gap brings it to its phase, never at once


def test_feeds_created_together_spread_over_the_interval():
    owners = [f"AC{i}:Calls" for i in range(200)]
    later = {owner: slots(owner, 1_000_000, polls=30)[2] % EVERY for owner in owners}  # third run: in phase
    per_poll = {t: sum(1 for v in later.values() if v == t) for t in set(later.values())}
    assert len(per_poll) == EVERY // 60  # every poll of the interval takes some
    assert max(per_poll.values()) < len(owners) / 2  # not all (nor most) in the same poll


def test_never_due_again_within_half_an_interval():
    for owner in (f"AC{i}:Messages" for i in range(50)):
        assert not _due(1000.0, EVERY, owner, now=1000.0 + EVERY / 2 - 1)
        assert _due(1000.0, EVERY, owner, now=1000.0 + 1.5 * EVERY)
