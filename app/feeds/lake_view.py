"""What the coverage report says about the lake (issue 23): per feed, how many of its copied days the lake task
loaded, how many it gave up on (and why), how many wait for it. The lake task (workers/lake_loader.py) writes
``CoverageDay.lake`` / ``lake_error``; this only reads them, so it needs none of the lake's libraries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from app.feeds.store import CoverageDay, FeedStore


def lake_days(store: FeedStore, owners: Sequence[str]) -> dict[str, dict[str, CoverageDay]]:
    """Every coverage record of the owners, decoded in full (the states alone do not carry the lake's fields)."""
    return store.coverage(owners)


def lake_summary(days: dict[str, CoverageDay], first: date, last: date) -> dict[str, Any]:
    """The copied days between ``first`` and ``last``: counts of ``loaded``, ``failed`` and ``waiting`` (not loaded
    yet, or copied before the lake was on), and ``failed_days``: day -> why."""
    counts = {"loaded": 0, "failed": 0, "waiting": 0}
    failed_days: dict[str, str] = {}
    for day, rec in sorted(days.items()):
        if rec.state != "copied" or not first.isoformat() <= day <= last.isoformat():
            continue
        state = rec.lake if rec.lake in ("loaded", "failed") else "waiting"
        counts[state] += 1
        if state == "failed":
            failed_days[day] = rec.lake_error or ""
    return {**counts, "failed_days": failed_days}
