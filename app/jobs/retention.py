"""Twilio deletes every day file 7 days after creating it: how close each uncopied day is to that.

Used by ``/health`` (the oldest uncopied day, failed days), the metrics gauges and the poller's warnings, so
the job -> day -> age walk is written once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from app.jobs.days import DayStore
from app.jobs.records import DayRecord, DayState, JobRecord
from app.jobs.store import JobStore
from app.platform import clock
from app.twilio.statuses import COPY_STATUSES

log = logging.getLogger(__name__)

TWILIO_RETENTION_S = 7 * 86400
RETENTION_WARN_S = 5 * 86400  # the poller warns, /health says "warn"
RETENTION_FAIL_S = 6 * 86400  # /health says "fail": one day left


def file_created_at(rec: DayRecord, job: JobRecord) -> float:
    """When Twilio made the day's file (it deletes it 7 days later); our job's creation time if unknown."""
    if rec.twilio_create_date:
        try:
            return datetime.fromisoformat(rec.twilio_create_date.replace("Z", "+00:00")).timestamp()
        except ValueError:
            log.warning("unparseable Twilio create_date %r", rec.twilio_create_date)
    return job.created_at


@dataclass(frozen=True)
class UncopiedDay:
    job_sid: str
    day: str
    state: DayState
    age_seconds: float  # since Twilio made the file


@dataclass
class ActiveDays:
    """Days of unfinished jobs that need attention."""

    failed: int = 0
    uncopied: list[UncopiedDay] = field(default_factory=list)  # done at Twilio, not yet final here

    @property
    def oldest_uncopied_age(self) -> float:
        return max((d.age_seconds for d in self.uncopied), default=0.0)


def scan_active_days(jobs: JobStore, days: DayStore, now: float | None = None) -> ActiveDays:
    """One walk over the days of every non-final job."""
    now = clock.now() if now is None else now
    result = ActiveDays()
    for sid in jobs.active_jobs():
        job = jobs.get_job(sid)
        if job is None:
            continue
        for rec in days.get_days(sid).values():
            if rec.state == DayState.FAILED:
                result.failed += 1
            elif not rec.state.final and rec.twilio_status in COPY_STATUSES:
                result.uncopied.append(UncopiedDay(sid, rec.day, rec.state, now - file_created_at(rec, job)))
    return result
