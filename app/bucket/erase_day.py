"""A deleted day's objects removed from S3, on a worker (``workers.tasks.erase_day_task``): the web records the
tombstone (app/feeds/tombstones.py) and may not delete objects itself (deploy/iam-policy-web.json).

Deleted only while the tombstone is still there (a restore or a copy on request since then wins), then checked
with a HEAD per key: the tombstone says ``erased`` only once S3 confirms every object is gone.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Protocol

from app.bucket.reconcile import BucketIndex
from app.feeds.store import FeedStore

log = logging.getLogger(__name__)


class ErasableBucket(BucketIndex, Protocol):
    """The bucket as the erase task needs it (the workers' S3 sink implements it)."""

    def delete(self, key: str) -> None:
        """DeleteObject (S3 errors raise)."""
        ...


class NotErased(RuntimeError):
    """S3 still holds an object of a deleted day after the DeleteObject (the task is retried)."""


def erase_day(store: FeedStore, bucket: ErasableBucket, owner: str, day: str) -> dict[str, Any]:
    """Delete the day's object(s): the key the tombstone kept and whatever key the listing has for the day."""
    rec = store.get_day(owner, day)
    if rec is None or rec.state != "deleted":
        return {"owner": owner, "day": day, "erased": False, "why": "the day is not deleted (restored meanwhile)"}
    account_sid, _, resource_type = owner.rpartition(":")
    listed = bucket.day_index(resource_type, account_sid).get(day)
    keys = sorted({k for k in (rec.key, listed[0] if listed else None) if k})
    for key in keys:
        bucket.delete(key)
    left = [key for key in keys if bucket.holds(key)]
    if left:
        raise NotErased(f"S3 still holds {', '.join(left)} after deleting it")
    store.replace_days(owner, {day: (rec, replace(rec, erased=True))})
    log.info(
        "deleted day erased from S3: %s %s",
        resource_type,
        day,
        extra={"resource_type": resource_type, "account_sid": account_sid, "day": day, "keys": keys},
    )
    return {"owner": owner, "day": day, "erased": True, "keys": keys}
