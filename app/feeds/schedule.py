"""When a feed's periodic tasks (its reconciliation with the bucket, its sweep of Twilio's day list) fall due.

Pure arithmetic, asked by the poller (``workers.tasks.poll_task``) for every feed at every poll.
"""

from __future__ import annotations

import hashlib


def due(last: float | None, every_seconds: float, owner: str, now: float) -> bool:
    """Due at the feed's own phase of the interval (after a first run at once): hundreds of feeds created together
    are then reconciled and swept spread over the interval, not all in the same poll, interval after interval.

    Runs are always between half an interval and one interval apart ("at least daily" stays true for the
    reconcile): the next phase slot when it is at least half an interval away, else half an interval (which
    puts the following run on the phase)."""
    if last is None:
        return True
    every = max(1, int(every_seconds))
    phase = int.from_bytes(hashlib.sha256(owner.encode()).digest()[:4], "big") % every
    to_slot = (phase - last) % every or every
    return now >= last + max(every / 2, to_slot)
