"""The bucket re-checked, not just listed: when a copied day's object is no longer the verified copy.

What the relay records when it copies a day (coverage, ``app.feeds.store.CoverageDay``): the object's key, size,
ETag (as S3 gave it for the verified upload), sha256 and record count. Two checks compare the bucket with that:

- every reconciliation (``app.bucket.reconcile.reconcile``, at least daily per feed) compares each copied day's listed
  ``Size``, and its ``ETag`` where both the listing and the record have one (``changed_objects``): cheap, one
  listing, catches an object replaced or truncated;
- ``relay verify`` (``app.bucket.verify``) re-reads the objects and checks sha256 and record count: catches what a
  listing cannot (bytes changed in place with the same size on a store whose ETag does not follow the bytes).

The rule, one meaning per state:

- **missing**: the object is gone (the listing lacks it and a HEAD confirms). The record is dropped: the sweep
  copies the day again if Twilio still lists a file, else the planner exports it again (one day of quota), as
  for any missing day.
- **corrupt**: the object is there but is not the verified copy (another size or ETag, or a sha256 / record
  count / gzip stream that does not check out). The record keeps the verified copy's facts and says what was
  found (``error``). The sweep (queued at once by the reconcile task that found it, and every
  ``SWEEP_INTERVAL_SECONDS``) copies the day again, overwriting the object, while Twilio still lists a file
  (kept 7 days after it was made; no quota), and the copy does not take the object's surviving metadata as
  proof that it is stored (``workers.day_copier``). Otherwise the day stays ``corrupt``, visible in coverage,
  the console calendar and ``relay_feed_days{state="corrupt"}``: the planner does not spend quota on it by
  itself; the console's Retry (or deleting the object, which makes it missing) asks for a new export.
  A corrupt day becomes ``copied`` again only through a copy, or when ``relay verify`` re-reads its object
  and finds the verified bytes; a reconciliation never makes it ``copied`` on a listing alone.
- Days recorded by versions that did not record a size: presence only, as before; without an ETag recorded:
  the size only; the size only too where the listed ETag is not of the recorded one's kind (multipart or not:
  ``_same_kind``).

Never silently ``copied``: every finding is an ERROR log naming the day, and counts in
``relay_bucket_problems_total{check, state}``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from app.feeds.store import CoverageDay
from app.platform import clock
from app.platform.metrics import BUCKET_PROBLEMS

log = logging.getLogger(__name__)

CHECKED_STATES = ("copied", "corrupt")  # the states whose object the checks look at


def listing_problem(rec: CoverageDay, size: int, etag: str) -> str | None:
    """What is wrong with a copied day's object as the listing shows it, or None when it is (as far as a listing
    can tell) the verified copy; None too when the record has no size (written by an older version)."""
    if rec.size is None:
        return None
    if size != rec.size:
        return f"the bucket's object is {size} bytes, the verified copy was {rec.size}"
    if rec.etag and etag and _same_kind(etag, rec.etag) and etag != rec.etag:
        return f"the bucket's object has ETag {etag}, the verified copy had {rec.etag}"
    return None


def _same_kind(a: str, b: str) -> bool:
    """Whether two ETags can be compared: both of a multipart upload (``<md5 of part md5s>-<parts>``) or neither.
    rclone's S3 server answers CompleteMultipartUpload with the former but lists (and HEADs) the object by the MD5
    of its bytes: there, a multipart day is compared by size (and by ``relay verify``)."""
    return ("-" in a) == ("-" in b)


def changed_objects(cov: dict[str, CoverageDay], listed: dict[str, tuple[str, int, str]]) -> dict[str, CoverageDay]:
    """day -> its corrupt record, for every copied day whose listed object is not the verified copy.

    Only the recorded key is compared (a key template with ``{job_sid}`` can hold several objects per day: the
    listing's may be another one)."""
    out = {}
    for day, rec in cov.items():
        found = listed.get(day)
        if rec.state != "copied" or found is None or (rec.key and found[0] != rec.key):
            continue
        problem = listing_problem(rec, found[1], found[2])
        if problem:
            out[day] = corrupt(rec, problem)
    return out


def corrupt(rec: CoverageDay, problem: str) -> CoverageDay:
    """The day's record as corrupt: the verified copy's facts kept (for a repair and a later verify), the
    problem in ``error``."""
    return replace(rec, state="corrupt", error=problem[:500], updated_at=clock.now())


def report_problems(
    check: str, resource_type: str, account_sid: str, corrupted: dict[str, CoverageDay], lost: list[str]
) -> None:
    """Loud, one line per day: an ERROR log with the key, and the counter by check and state."""
    for day, rec in sorted(corrupted.items()):
        BUCKET_PROBLEMS.labels(check, "corrupt").inc()
        log.error(
            "%s: the bucket's object of %s %s is not the verified copy: %s",
            check,
            resource_type,
            day,
            rec.error,
            extra={"resource_type": resource_type, "account_sid": account_sid, "day": day, "key": rec.key},
        )
    for day in sorted(lost):
        BUCKET_PROBLEMS.labels(check, "missing").inc()
        log.error(
            "%s: the bucket no longer holds %s %s: missing again",
            check,
            resource_type,
            day,
            extra={"resource_type": resource_type, "account_sid": account_sid, "day": day},
        )
