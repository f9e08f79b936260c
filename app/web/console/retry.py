"""Retrying one failed, missing or corrupt day of a feed from the coverage calendar: the rule.

1. The day's coverage record names a job we still track, not cancelled, in which *our copy* of the day failed
   (Twilio made the file): requeue the day in that job (``ops.requeue``). The file is still at Twilio for
   7 days after it was made; no quota is spent.
2. Otherwise, Twilio lists a file for the day (ListDay: a daily export, a job made elsewhere, or an older job):
   copy that file (``daily_exports.copy_listed_day``, even if that very file was copied before); no quota is
   spent.
3. Otherwise a new export is needed: the day's failed (or retry-later) record is removed (``FeedStore.drop_days``),
   so the day is plainly missing and the planner asks Twilio for it at its next poll, within today's quota (a
   corrupt day's object is then overwritten by that export's copy).
   A day Twilio itself failed in its job lands here too: asking that job again would get the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.feeds import coverage, daily_exports
from app.feeds.store import Feed
from app.jobs import ops
from app.jobs.records import DayState, JobState
from app.platform.errors import Conflict, NotFound, RequestError
from app.services import Services
from app.twilio.accounts import Account
from app.twilio.statuses import FAILED_STATUSES


@dataclass(frozen=True)
class RetryOutcome:
    how: str  # requeued | listed | planner
    job_sid: str | None
    message: str


def copy_failed_in_job(svc: Services, job_sid: str | None, day: str) -> bool:
    """True when ``job_sid`` is tracked, not cancelled, and our copy of ``day`` failed there (not Twilio)."""
    if not job_sid:
        return False
    job = svc.jobs.get_job(job_sid)
    if job is None or job.state == JobState.CANCELLED:
        return False
    rec = svc.days.get_day(job_sid, day)
    return rec is not None and rec.state == DayState.FAILED and rec.twilio_status not in FAILED_STATUSES


def retry_day(svc: Services, feed: Feed, day: str, account: Account) -> RetryOutcome:
    """Apply the rule above to ``day`` of ``feed``; refuses a day outside the window or not failed/missing."""
    daily = svc.feeds.daily_enabled([feed.owner])[feed.owner]
    if day not in coverage.feed_window(feed, daily).days():
        raise RequestError(f"{day} is outside the {feed.resource_type} feed's window")
    rec = svc.feeds.coverage([feed.owner])[feed.owner].get(day)
    state = coverage.reported_state(rec)
    if state not in ("failed", "missing", "corrupt"):
        raise Conflict(f"{day} is {state.replace('_', ' ')}: there is nothing to retry")
    if rec is not None and copy_failed_in_job(svc, rec.job_sid, day):
        assert rec.job_sid is not None
        ops.requeue(svc, rec.job_sid, [day])
        svc.feeds.mark_in_flight(feed.owner, rec.job_sid, [day])
        return RetryOutcome(
            "requeued", rec.job_sid, f"{day}: the copy was requeued in job {rec.job_sid} (no quota used)."
        )
    try:
        job = daily_exports.copy_listed_day(svc, feed.resource_type, day, account)
    except NotFound:
        pass
    else:
        return RetryOutcome("listed", job.job_sid, f"{day}: copying the file Twilio lists (no quota used).")
    svc.feeds.drop_days(feed.owner, [day])
    when = "at its next poll" if feed.enabled else "once the feed is enabled again"
    return RetryOutcome(
        "planner",
        None,
        f"{day}: Twilio lists no file for it; the planner asks Twilio for a new export {when} "
        "(one day of today's quota).",
    )
