"""Coverage: the state of every day of every feed, and its reconciliation with the bucket.

A day of a feed's window is ``copied`` or ``empty`` (done), ``in_flight`` (a tracked job covers it and is not
final), ``failed`` (given up after FEED_MAX_ATTEMPTS failed jobs: requeue it), ``corrupt`` (copied, but the
bucket's object is no longer the verified copy: app/check.py), or ``missing`` (nothing covers it, or a
failed attempt waits for its retry). The record is kept per (account, resource type) in ``ber:cov`` and updated
as jobs finish days (``record_job_day``); the bucket is the final word on ``copied``: ``reconcile`` adds every day
found in an S3 listing, forgets every ``copied`` day the listing lacks (so a lost or hand-edited registry never
makes the relay export a stored day again, and a day deleted from S3 is fetched again), and marks ``corrupt``
every copied day whose listed size or ETag is not the recorded copy's.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, NamedTuple, Protocol

from app.bucket import check
from app.feeds.declared import feed_view
from app.feeds.store import CoverageDay, Feed, FeedStore, owner_of
from app.jobs.records import DayRecord, DayState, JobRecord
from app.platform import clock
from app.platform.config import SyncSettings
from app.platform.days import EARLIEST_DAY, compact_ranges, days_between, newest_exportable_day
from app.services import Services

log = logging.getLogger(__name__)

LISTING_LAG_SECONDS = 600
REPORTED_STATES = ("copied", "empty", "in_flight", "failed", "corrupt", "missing")


class BucketIndex(Protocol):
    """What the bucket holds for a resource type (the workers' S3 sink implements it)."""

    def day_index(self, resource_type: str, account_sid: str = "") -> dict[str, tuple[str, int, str]]:
        """day -> (key, size, ETag or "") of every stored day file of the account's resource type."""
        ...

    def holds(self, key: str) -> bool:
        """Whether the object ``key`` exists now (a HEAD: read-after-write consistent, unlike some listings)."""
        ...


@dataclass(frozen=True)
class Window:
    first: date
    last: date

    def days(self) -> list[str]:
        return list(_window_days(self.first, self.last))


@functools.lru_cache(maxsize=64)
def _window_days(first: date, last: date) -> tuple[str, ...]:
    """Feeds from SYNC_FEEDS share their window: its days are made once per poll, not once per feed."""
    return tuple(days_between(first, last)) if first <= last else ()


def feed_window(feed: Feed, daily_enabled: bool, today: date | None = None) -> Window:
    """since .. min(until, the newest day that can exist): today-2 for custom jobs, today-1 with daily exports.

    A feed stored before ``since`` was bounded (issue 20) starts at EARLIEST_DAY: its cost stays bounded too."""
    today = today or clock.utc_today()
    newest = newest_exportable_day(today, daily_enabled)
    last = min(date.fromisoformat(feed.until), newest) if feed.until else newest
    return Window(max(date.fromisoformat(feed.since), EARLIEST_DAY), last)


def reported_state(rec: CoverageDay | None) -> str:
    if rec is None or rec.state == "retry":
        return "missing"
    return rec.state


def feed_states(window: Window, cov: dict[str, CoverageDay]) -> dict[str, str]:
    return {day: reported_state(cov.get(day)) for day in window.days()}


def summarise(states: dict[str, str]) -> dict[str, Any]:
    """Counts per state and the days of each state as compact ranges (a 3-year feed is a few lines)."""
    by_state: dict[str, list[str]] = {s: [] for s in REPORTED_STATES}
    for day, state in states.items():
        by_state[state].append(day)
    return {
        "counts": {s: len(days) for s, days in by_state.items()},
        "ranges": {s: [list(r) for r in compact_ranges(days)] for s, days in by_state.items() if days},
    }


def lag_days(states: dict[str, str], newest: date) -> int | None:
    """Days between the newest day that can exist and the newest day that is copied or empty (None: none yet)."""
    done = [d for d, s in states.items() if s in ("copied", "empty")]
    return (newest - date.fromisoformat(max(done))).days if done else None


# -- keeping it up to date ------------------------------------------------------------------------------------


def record_job_day(store: FeedStore, settings: SyncSettings, job: JobRecord, rec: DayRecord) -> None:
    """A job finished one of its days: copied and empty days are done; a failed one is retried with backoff as a
    new job until FEED_MAX_ATTEMPTS, then ``failed``."""
    owner = owner_of(job.resource_type, job.account_sid)
    if rec.state in (DayState.COPIED, DayState.EMPTY):
        done = CoverageDay(
            rec.state.value, job.job_sid, rec.key, rec.size, rec.sha256, rec.records, rec.twilio_create_date, rec.etag
        )
        store.put_days(owner, {rec.day: done})
    elif rec.state == DayState.FAILED:
        previous = store.get_day(owner, rec.day)
        if previous is not None and previous.state in ("copied", "empty"):
            return  # another job already brought the day in
        if previous is not None and previous.state == "corrupt":
            # The bucket still holds the bad object: the day stays corrupt (and visible), with why it was not
            # replaced; the planner does not export it again by itself (app/check.py).
            store.put_days(owner, {rec.day: replace(previous, error=f"not copied again: {rec.error}"[:500])})
            return
        if previous is not None and previous.state in ("retry", "failed") and previous.job_sid == job.job_sid:
            return  # this job's failure is already counted (seen again when the job ends, or after a requeue)
        attempts = (previous.attempts if previous else 0) + 1
        final = attempts >= settings.max_attempts
        delay = settings.retry_base_seconds * 2 ** (attempts - 1)
        failed = CoverageDay(
            "failed" if final else "retry",
            job.job_sid,
            attempts=attempts,
            next_try=0.0 if final else clock.now() + delay,
            error=rec.error,
        )
        store.put_days(owner, {rec.day: failed})


def release_job(store: FeedStore, job: JobRecord, days: Iterable[str]) -> None:
    """The job ended without finishing these days (cancelled, lost at Twilio): they are missing again."""
    store.release_days(owner_of(job.resource_type, job.account_sid), job.job_sid, list(days))


class Reconciled(NamedTuple):
    found: int  # days found in S3 but not recorded
    lost: int  # copied (or corrupt) days S3 no longer has: missing again
    corrupt: int  # copied days whose object is no longer the recorded copy (size or ETag)


def reconcile(store: FeedStore, index: BucketIndex, resource_type: str, account_sid: str) -> Reconciled:
    """Make coverage agree with the bucket."""
    owner = owner_of(resource_type, account_sid)
    listed_at = clock.now()
    stored = index.day_index(resource_type, account_sid)
    cov = store.coverage([owner])[owner]
    found = {
        day: CoverageDay("copied", cov[day].job_sid if day in cov else None, key, size, etag=etag or None)
        for day, (key, size, etag) in stored.items()
        if day not in cov or cov[day].state not in check.CHECKED_STATES
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
    dropped = store.replace_days(owner, {d: (cov[d], None) for d in lost})
    corrupt = store.replace_days(owner, {d: (cov[d], new) for d, new in changed.items()})
    store.mark_run("reconcile", owner, clock.now())
    check.report_problems("reconcile", resource_type, account_sid, {d: changed[d] for d in corrupt}, dropped)
    if found:
        log.warning("coverage reconciled: %d day(s) found in S3", len(found), extra={"resource_type": resource_type})
    return Reconciled(len(found), len(dropped), len(corrupt))


def _still_there(index: BucketIndex, key: str | None) -> bool:
    return bool(key) and index.holds(str(key))


# -- the report (API, CLI, /health, metrics) ----------------------------------------------------------------


def report(
    svc: Services,
    resource_type: str | None = None,
    first: date | None = None,
    last: date | None = None,
    account_sid: str | None = None,
) -> dict[str, Any]:
    """Per feed: its window, counts per state, the days of each state as ranges, lag; plus today's quota per
    account family."""
    feeds = [
        f
        for f in svc.feeds.list_feeds()
        if resource_type in (None, f.resource_type) and account_sid in (None, f.account)
    ]
    owners = [f.owner for f in feeds]
    covs = svc.feeds.day_states(owners)
    daily = svc.feeds.daily_enabled(owners)
    plan = svc.feeds.last_plan()
    reconciled = svc.feeds.last_runs(("reconcile",), owners)
    today = clock.utc_today()
    out = []
    for feed in feeds:
        window = feed_window(feed, daily[feed.owner], today)
        shown = Window(max(window.first, first or window.first), min(window.last, last or window.last))
        every = feed_states(window, covs[feed.owner])
        states = every if shown == window else feed_states(shown, covs[feed.owner])
        out.append(
            {
                **feed_view(feed),
                "daily_export": daily[feed.owner],
                "window": [window.first.isoformat(), window.last.isoformat()],
                "shown": [shown.first.isoformat(), shown.last.isoformat()],
                **summarise(states),
                "lag_days": lag_days(every, window.last),
                "waiting_for_quota": int(plan.get("waiting_for_quota", {}).get(feed.owner, 0)),
                "last_reconciled_at": reconciled[("reconcile", feed.owner)],
                "family": family_of(svc, feed.account),
            }
        )
    families = sorted({f["family"] for f in out} | {svc.accounts.primary.family})
    return {
        "today": today.isoformat(),
        "quota": quota_view(svc, today, svc.accounts.primary.family),
        "quotas": {family: quota_view(svc, today, family) for family in families},
        "feeds": out,
    }


def family_of(svc: Services, account_sid: str) -> str:
    """The quota family of an account (its parent's SID); an account no longer served is its own family."""
    try:
        return svc.accounts.get(account_sid).family
    except LookupError:
        return account_sid


def quota_view(svc: Services, today: date, family: str) -> dict[str, Any]:
    """Today's quota of one account family (a parent and its subaccounts share Twilio's daily quota)."""
    used = svc.quota.used(today.isoformat(), family)
    limit = svc.settings.daily_day_quota
    return {
        "family": family,
        "used_today": used,
        "limit": limit,
        "reserved_for_manual": svc.settings.sync.quota_reserve_days,
        "left_for_feeds": max(0, limit - svc.settings.sync.quota_reserve_days - used),
        "resets_at": (today + timedelta(days=1)).isoformat() + "T00:00:00Z",
    }
