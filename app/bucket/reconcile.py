"""Coverage reconciled with the bucket: the bucket is the final word on which days are ``copied``.

``reconcile`` (the reconcile task, at least daily per feed: ``workers.tasks.reconcile_task``) adds every day found
in an S3 listing (so a lost or hand-edited registry never makes the relay export a stored day again), and marks
``corrupt`` every copied day whose listed size or ETag is not the recorded copy's (the rule: ``app.bucket.check``).

A copied day the listing lacks *vanished*. A day deleted on purpose has a tombstone (``deleted``,
app/feeds/tombstones.py): it is neither found again nor fetched again. Without one, REFETCH_VANISHED decides:
``auto`` forgets the day (missing: the planner fetches it again, spending quota), ``never`` records it
``vanished`` (reported as missing, not fetched again: for owners whose own lifecycle rules delete inside a feed's
window). Either way a log line names the day, what was done and why, and ``Reconciled`` counts both.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Protocol

from app.bucket import check
from app.feeds.store import CoverageDay, FeedStore
from app.platform import clock
from app.twilio.accounts import owner_of

log = logging.getLogger(__name__)

LISTING_LAG_SECONDS = 600


class BucketIndex(Protocol):
    """What the bucket holds for a resource type (the workers' S3 sink implements it)."""

    def day_index(self, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int, str]]:
        """day -> (key, size, ETag or "") of every stored day file of the account's resource type."""
        ...

    def holds(self, key: str) -> bool:
        """Whether the object ``key`` exists now (a HEAD: read-after-write consistent, unlike some listings)."""
        ...


class Reconciled(NamedTuple):
    found: int  # days found in S3 but not recorded
    lost: int  # copied (or corrupt) days S3 no longer has (vanished without a tombstone)
    corrupt: int  # copied days whose object is no longer the recorded copy (size or ETag)
    refetched: int = 0  # of the lost days, those forgotten so the planner fetches them again (REFETCH_VANISHED=auto)
    left_missing: int = 0  # of the lost days, those recorded ``vanished``: not fetched again (REFETCH_VANISHED=never)


def reconcile(
    store: FeedStore, index: BucketIndex, resource_type: str, account_sid: str, refetch_vanished: str = "auto"
) -> Reconciled:
    """Make coverage agree with the bucket; ``refetch_vanished``: REFETCH_VANISHED (module docstring)."""
    owner = owner_of(resource_type, account_sid)
    listed_at = clock.now()
    stored = index.day_index(resource_type, account_sid)
    cov = store.coverage([owner])[owner]
    found = {
        day: CoverageDay("copied", cov[day].job_sid if day in cov else None, key, size, etag=etag or None)
        for day, (key, size, etag) in stored.items()
        if day not in cov or cov[day].state not in (*check.CHECKED_STATES, "deleted")
    }
    # A day copied while the listing ran, or just before (some S3 servers list new objects late), may be absent
    # from it, or listed with the object it replaced: only days recorded well before the listing are checked,
    # and a day is "lost" only once a HEAD of its key confirms it (rare: someone deleted it). Dropping a day
    # that is there would export it again. Records changed meanwhile are left alone (``replace_days``).
    settled = listed_at - LISTING_LAG_SECONDS
    cov_settled = {d: rec for d, rec in cov.items() if rec.updated_at < settled}
    checked = check.CHECKED_STATES
    absent = [d for d, rec in cov_settled.items() if rec.state in checked and d not in stored]
    lost = [d for d in absent if not _still_there(index, cov[d].key)]
    changed = check.changed_objects(cov_settled, stored)
    store.put_days(owner, found)
    dropped = store.replace_days(owner, {d: (cov[d], vanished_record(cov[d], refetch_vanished)) for d in lost})
    corrupt = store.replace_days(owner, {d: (cov[d], new) for d, new in changed.items()})
    store.mark_run("reconcile", owner, clock.now())
    check.report_problems("reconcile", resource_type, account_sid, {d: changed[d] for d in corrupt}, dropped)
    _log_vanished(resource_type, account_sid, dropped, refetch_vanished)
    if found:
        log.warning("coverage reconciled: %d day(s) found in S3", len(found), extra={"resource_type": resource_type})
    refetched = len(dropped) if refetch_vanished == "auto" else 0
    return Reconciled(len(found), len(dropped), len(corrupt), refetched, len(dropped) - refetched)


def vanished_record(read: CoverageDay, refetch_vanished: str) -> CoverageDay | None:
    """What a day gone from S3 without a tombstone becomes: forgotten (None: missing, fetched again) or
    ``vanished`` (missing, not fetched again), keeping the key it had."""
    if refetch_vanished == "auto":
        return None
    return CoverageDay("vanished", read.job_sid, read.key, error="gone from S3 without a tombstone")


def _log_vanished(resource_type: str, account_sid: str, days: list[str], refetch_vanished: str) -> None:
    if not days:
        return
    did = "fetched again" if refetch_vanished == "auto" else "left missing, not fetched again"
    log.warning(
        "reconcile: %d day(s) of %s vanished from S3 without a tombstone (%s): %s (REFETCH_VANISHED=%s)",
        len(days),
        resource_type,
        ", ".join(sorted(days)),
        did,
        refetch_vanished,
        extra={"resource_type": resource_type, "account_sid": account_sid, "days": sorted(days)},
    )


def _still_there(index: BucketIndex, key: str | None) -> bool:
    return bool(key) and index.holds(str(key))
