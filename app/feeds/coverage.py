"""Coverage: the state of every day of every feed.

A day of a feed's window is ``copied`` or ``empty`` (done), ``in_flight`` (a tracked job covers it and is not
final), ``failed`` (given up after FEED_MAX_ATTEMPTS failed jobs: requeue it), ``corrupt`` (copied, but the
bucket's object is no longer the verified copy: app/bucket/check.py), ``deleted`` (deleted on purpose: a
tombstone, app/feeds/tombstones.py), or ``missing`` (nothing covers it, a failed attempt waits for its retry, or
it vanished from S3 with REFETCH_VANISHED=never). A day of a feed with ``retain_days`` older than today -
retain_days is ``expired``: outside the window, never planned nor fetched again. The record is kept per (account,
resource type) in ``ber:cov`` and updated as jobs finish days (``record_job_day``, ``CoverageKeeper``); the bucket
is the final word on ``copied`` (``app.bucket.reconcile``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from app.feeds import lake_view
from app.feeds.declared import feed_view
from app.feeds.store import KEPT_GONE_STATES, CoverageDay, Feed, FeedStore
from app.jobs.records import DayRecord, DayState, JobRecord
from app.platform import clock
from app.platform.config import FeedSettings
from app.platform.days import EARLIEST_DAY, compact_ranges, days_between, job_days, newest_exportable_day
from app.twilio.accounts import owner_of

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

REPORTED_STATES = ("copied", "empty", "in_flight", "failed", "corrupt", "missing", "deleted", "expired")


@dataclass(frozen=True)
class Window:
    """The days a feed keeps complete (``days``); ``expired_since``: the feed's since when retain_days moved the
    first day later (the days between are ``expired``)."""

    first: date
    last: date
    expired_since: date | None = None

    def expired_days(self) -> list[str]:
        if self.expired_since is None:
            return []
        return list(_window_days(self.expired_since, min(self.first - timedelta(days=1), self.last)))

    def days(self) -> list[str]:
        return list(_window_days(self.first, self.last))


@functools.lru_cache(maxsize=64)
def _window_days(first: date, last: date) -> tuple[str, ...]:
    """Feeds from SYNC_FEEDS share their window: its days are made once per poll, not once per feed."""
    return tuple(days_between(first, last)) if first <= last else ()


def feed_window(feed: Feed, daily_enabled: bool, today: date | None = None) -> Window:
    """since .. min(until, the newest day that can exist): today-2 for custom jobs, today-1 with daily exports.

    A feed stored before ``since`` was bounded (issue 20) starts at EARLIEST_DAY: its cost stays bounded too. With
    ``retain_days`` it starts no earlier than today - retain_days."""
    today = today or clock.utc_today()
    newest = newest_exportable_day(today, daily_enabled)
    last = min(date.fromisoformat(feed.until), newest) if feed.until else newest
    since = max(date.fromisoformat(feed.since), EARLIEST_DAY)
    kept_from = today - timedelta(days=feed.retain_days) if feed.retain_days else since
    return Window(max(since, kept_from), last, since if kept_from > since else None)


def shown_window(window: Window, first: date | None, last: date | None) -> Window:
    """The part of a feed's days (expired ones included) between ``first`` and ``last``."""
    start = window.expired_since or window.first
    shown_first, shown_last = max(start, first or start), min(window.last, last or window.last)
    return Window(max(window.first, shown_first), shown_last, shown_first if shown_first < window.first else None)


def reported_state(rec: CoverageDay | None) -> str:
    if rec is None or rec.state in ("retry", "vanished"):
        return "missing"
    return rec.state


def feed_states(window: Window, cov: dict[str, CoverageDay]) -> dict[str, str]:
    expired = dict.fromkeys(window.expired_days(), "expired")
    return expired | {day: reported_state(cov.get(day)) for day in window.days()}


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


def record_job_day(store: FeedStore, settings: FeedSettings, job: JobRecord, rec: DayRecord) -> None:
    """A job finished one of its days: copied and empty days are done; a failed one is retried with backoff as a
    new job until FEED_MAX_ATTEMPTS, then ``failed``."""
    owner = owner_of(job.resource_type, job.account_sid)
    if rec.state in (DayState.COPIED, DayState.EMPTY):
        done = CoverageDay(
            rec.state.value, job.job_sid, rec.key, rec.size, rec.sha256, rec.records, rec.twilio_create_date, rec.etag
        )
        for _ in range(3):  # compare-and-set: a tombstone written meanwhile is never overwritten
            previous = store.get_day(owner, rec.day)
            if previous is not None and previous.state in KEPT_GONE_STATES:
                return  # deleted (or let vanish) on purpose: the tombstone stays (only restore or copy-day lift it)
            if previous is None:
                store.put_days(owner, {rec.day: done})
                return
            if store.replace_days(owner, {rec.day: (previous, done)}):
                return
        log.warning(
            "coverage of %s %s changed three times while recording a copy: the reconcile settles it", owner, rec.day
        )
    elif rec.state == DayState.FAILED:
        previous = store.get_day(owner, rec.day)
        if previous is not None and previous.state in ("copied", "empty", *KEPT_GONE_STATES):
            return  # another job already brought the day in, or it is kept gone (a retry would fetch it again)
        if previous is not None and previous.state == "corrupt":
            # The bucket still holds the bad object: the day stays corrupt (and visible), with why it was not
            # replaced; the planner does not export it again by itself (app/bucket/check.py).
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


@dataclass(frozen=True)
class CoverageKeeper:
    """What a job's end means for coverage (``app.jobs.lifecycle.JobOutcomes``, wired in by ``app.services``)."""

    store: FeedStore
    settings: FeedSettings

    def job_settled(self, job: JobRecord, days: dict[str, DayRecord]) -> None:
        """Done days recorded, failed ones scheduled for a retry, unfinished ones missing again. Copied days were
        recorded by the day copier (a crash before that is healed by the planner); empty and failed days may have
        been decided by the sync, from Twilio's answers, without a copy."""
        for rec in days.values():
            if rec.state.final and rec.state != DayState.COPIED:
                record_job_day(self.store, self.settings, job, rec)
        unfinished = [d for d in job_days(job.start_day, job.end_day) if d not in days or not days[d].state.final]
        release_job(self.store, job, unfinished)


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
    lakes = lake_view.lake_days(svc.feeds, owners) if svc.settings.lake is not None else None
    out = []
    for feed in feeds:
        window = feed_window(feed, daily[feed.owner], today)
        shown = shown_window(window, first, last)
        every = feed_states(window, covs[feed.owner])
        states = every if shown == window else feed_states(shown, covs[feed.owner])
        out.append(
            {
                **feed_view(feed),
                "daily_export": daily[feed.owner],
                "window": [window.first.isoformat(), window.last.isoformat()],
                "shown": [(shown.expired_since or shown.first).isoformat(), shown.last.isoformat()],
                **summarise(states),
                "lag_days": lag_days(every, window.last),
                "waiting_for_quota": int(plan.get("waiting_for_quota", {}).get(feed.owner, 0)),
                "last_reconciled_at": reconciled[("reconcile", feed.owner)],
                "family": family_of(svc, feed.account),
            }
        )
        if lakes is not None:  # with a lake: its state of the shown copied days (app/feeds/lake_view.py)
            out[-1]["lake"] = lake_view.lake_summary(lakes[feed.owner], shown.first, shown.last)
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
