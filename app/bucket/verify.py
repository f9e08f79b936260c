"""``relay verify``: re-read what the bucket holds of each copied day and check it against what was recorded.

A listing (``app.bucket.reconcile``) sees sizes and ETags; this reads the bytes: the object streamed in bounded
chunks through SHA-256 and the copy's own gzip check (``app.bucket.gzip_check``: framing, CRC-32, length trailers,
record count), then compared with the day's record (size, sha256, records). It runs on a worker
(``workers.tasks.verify_task``, queued by the CLI, which waits for its report): only the workers' role may read
objects (deploy/iam-policy-*.json; the web's can list the bucket, no more), and the object is read through the
workers' sink (``ObjectReader``). What it finds is recorded by the rule of
``app.bucket.check`` (``corrupt`` / ``missing``, ERROR log, ``relay_bucket_problems_total{check="verify"}``), and
a ``corrupt`` day whose object now checks out is ``copied`` again.

``repair``: a problem day is copied again from the file Twilio lists for it, through the usual listed-day copy
(``app.feeds.daily_exports.copy_listed_day``, queued to the workers, no quota): Twilio keeps a file 7 days after making
it. Without one, it says so: a missing day is exported again by the planner (one day of quota) if its feed is
enabled; a corrupt day stays corrupt and visible until the console's Retry asks for a new export.

Days recorded without a sha256 (found in a listing, not copied here) get the size and gzip check only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

from app.bucket import check as bucket_check
from app.bucket.gzip_check import GzipCheck, GzipCorrupt
from app.feeds import daily_exports
from app.feeds.store import CoverageDay, Feed
from app.platform import clock
from app.platform.errors import DomainError, NotFound
from app.twilio.client import TwilioError

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

PROBLEMS = ("corrupt", "missing", "unreadable")


class ObjectReader(Protocol):
    """How the bucket's objects are read (the workers' S3 sink implements it)."""

    def read_object(self, key: str) -> Generator[bytes, None, None] | None:
        """The object's bytes in bounded chunks (closing the generator closes the download), or None when there is
        no object at ``key``; any other S3 failure raises."""
        ...


@dataclass(frozen=True)
class DayCheck:
    """One day's outcome: ``ok``, ``restored`` (was corrupt, checks out now), or a problem (PROBLEMS)."""

    resource_type: str
    account_sid: str
    day: str
    key: str | None
    outcome: str
    detail: str = ""
    repair: str = ""  # with repair: what was done about it, or why nothing could be
    sha256_recorded: bool = True

    @property
    def problem(self) -> bool:
        return self.outcome in PROBLEMS

    def view(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("resource_type", "account_sid", "day", "key", "outcome", "detail")} | {
            "repair": self.repair or None
        }


@dataclass(frozen=True)
class Selection:
    resource_type: str | None = None
    account_sid: str | None = None
    first: date | None = None
    last: date | None = None


def verify(svc: Services, reader: ObjectReader, which: Selection, repair: bool = False) -> list[DayCheck]:
    """Every copied (or corrupt) day of the selected feeds, re-read and checked, in feed and day order."""
    feeds = [
        f
        for f in svc.feeds.list_feeds()
        if which.resource_type in (None, f.resource_type) and which.account_sid in (None, f.account)
    ]
    out: list[DayCheck] = []
    for feed in feeds:
        out += _verify_feed(svc, reader, feed, which, repair)
    return out


def _verify_feed(svc: Services, reader: ObjectReader, feed: Feed, which: Selection, repair: bool) -> list[DayCheck]:
    cov = svc.feeds.coverage([feed.owner])[feed.owner]
    first, last = (which.first or date.min).isoformat(), (which.last or date.max).isoformat()
    days = sorted(d for d, rec in cov.items() if rec.state in bucket_check.CHECKED_STATES and first <= d <= last)
    checks = [_record(svc, feed, day, cov[day], *_read_and_compare(reader, cov[day])) for day in days]
    if repair:
        checks = [_repair(svc, feed, c) if c.outcome in ("corrupt", "missing") else c for c in checks]
    return checks


def _record(svc: Services, feed: Feed, day: str, rec: CoverageDay, outcome: str, detail: str) -> DayCheck:
    """Record what was found (only where the record is still the one read: a copy may have landed meanwhile)."""
    rt, account = feed.resource_type, feed.account
    if outcome == "ok" and rec.state == "corrupt" and not rec.sha256:
        outcome, detail = "corrupt", "no sha256 recorded: its bytes cannot prove the verified copy (--repair copies it)"
    if outcome == "corrupt" and rec.state == "copied":
        bad = bucket_check.corrupt(rec, detail)
        if svc.feeds.replace_days(feed.owner, {day: (rec, bad)}):
            bucket_check.report_problems("verify", rt, account, {day: bad}, [])
    elif outcome == "missing":
        if svc.feeds.replace_days(feed.owner, {day: (rec, None)}):
            bucket_check.report_problems("verify", rt, account, {}, [day])
    elif outcome == "ok" and rec.state == "corrupt":  # its recorded sha256 matched: the verified bytes again
        restored = replace(rec, state="copied", error=None, updated_at=clock.now())
        if svc.feeds.replace_days(feed.owner, {day: (rec, restored)}):
            outcome, detail = "restored", "was corrupt; the object is the verified copy again"
    return DayCheck(rt, account, day, rec.key, outcome, detail, sha256_recorded=bool(rec.sha256))


def _read_and_compare(reader: ObjectReader, rec: CoverageDay) -> tuple[str, str]:
    """(outcome, detail) of re-reading the day's object."""
    if not rec.key:
        return "unreadable", "no key recorded"
    chunks = None
    try:
        chunks = reader.read_object(rec.key)
        return ("missing", "the object is gone") if chunks is None else _compare(rec, chunks)
    except Exception as exc:  # S3 refused or failed: reported (and the exit status says so), nothing recorded
        log.warning("verify: could not read %s: %s", rec.key, exc)
        return "unreadable", f"{type(exc).__name__}: {exc}"
    finally:
        if chunks is not None:
            chunks.close()


def _compare(rec: CoverageDay, chunks: Generator[bytes, None, None]) -> tuple[str, str]:
    """Stream the object through SHA-256 and the gzip check, stopping early once it is longer than recorded."""
    sha, gzip, size = hashlib.sha256(), GzipCheck(), 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if rec.size is not None and size > rec.size:
                return "corrupt", f"the object is longer than the verified copy's {rec.size} bytes"
            sha.update(chunk)
            gzip.feed(chunk)
        records = gzip.finish(size)
    except GzipCorrupt as exc:
        return "corrupt", f"not the intact gzip file copied: {exc}"
    if rec.size is not None and size != rec.size:
        return "corrupt", f"the object is {size} bytes, the verified copy was {rec.size}"
    if rec.sha256 and sha.hexdigest() != rec.sha256:
        return "corrupt", f"sha256 {sha.hexdigest()}, the verified copy's was {rec.sha256}"
    if rec.records is not None and records != rec.records:
        return "corrupt", f"{records} records, the verified copy had {rec.records}"
    return "ok", "" if rec.sha256 else "no sha256 recorded: size and gzip checked"


def _repair(svc: Services, feed: Feed, check: DayCheck) -> DayCheck:
    """Copy the day again from the file Twilio lists (queued to the workers), or say why that cannot be."""
    try:
        account = svc.accounts.get(feed.account)
        job = daily_exports.copy_listed_day(svc, feed.resource_type, check.day, account)
    except NotFound:
        if check.outcome == "missing":
            how = "the planner exports it again (one day of quota)" if feed.enabled else "enable the feed to export it"
        else:
            how = "it stays corrupt; the console's Retry exports it again (one day of quota)"
        return replace(check, repair=f"cannot repair: Twilio lists no file for it (kept 7 days); {how}")
    except (DomainError, TwilioError) as exc:
        return replace(check, repair=f"cannot repair now: {exc}")
    return replace(check, repair=f"copy queued: job {job.job_sid} (the file Twilio lists, no quota)")


def summary(checks: list[DayCheck]) -> dict[str, Any]:
    """Counts per outcome, and the problem days (with what the repair did)."""
    counts: dict[str, int] = {}
    for c in checks:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
    return {
        "checked": len(checks),
        "counts": counts,
        "without_sha256": sum(1 for c in checks if not c.sha256_recorded),
        "problems": [c.view() for c in checks if c.problem],
        "restored": [c.view() for c in checks if c.outcome == "restored"],
    }


def summary_text(doc: dict[str, Any]) -> str:
    """``summary`` for people: one line per problem day (and what its repair did), then the counts."""
    lines = [
        f"{p['outcome'].upper():<10} {p['resource_type']} {p['day']}  {p['key'] or '-'}: {p['detail']}"
        + (f"\n           repair: {p['repair']}" if p["repair"] else "")
        for p in doc["problems"]
    ]
    lines += [f"RESTORED   {r['resource_type']} {r['day']}: {r['detail']}" for r in doc["restored"]]
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(doc["counts"].items())) or "nothing to check"
    note = f" ({doc['without_sha256']} without a recorded sha256: size and gzip only)" if doc["without_sha256"] else ""
    verdict = f"{len(doc['problems'])} problem day(s)" if doc["problems"] else "no problem found"
    lines.append(f"verified {doc['checked']} copied day(s): {counts}{note}; {verdict}")
    return "\n".join(lines)
