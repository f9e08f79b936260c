"""Operations on tracked jobs: look one up, read it from Twilio now, adopt a job made elsewhere, cancel, requeue
failed days."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.jobs.lifecycle import fetched, finish
from app.jobs.ownership import record_of
from app.jobs.records import DayState, JobRecord, JobState
from app.platform.config import RESOURCE_TYPES
from app.platform.errors import Conflict, NotFound, RequestError
from app.platform.metrics import JOBS
from app.platform.validation import DAY_RE, validate_job_sid
from app.twilio.client import TwilioError, TwilioNotFound

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)


def require_job(svc: Services, job_sid: str) -> JobRecord:
    validate_job_sid(job_sid)
    job = svc.jobs.get_job(job_sid)
    if job is None:
        raise NotFound(f"job {job_sid} is not tracked here")
    return job


def refresh(svc: Services, job_sid: str) -> JobRecord:
    """Read the job from Twilio now (``relay status --refresh``, ``POST /api/jobs/{sid}/refresh``).

    Twilio's answer (queue position, ETA, per-day statuses) replaces the record's snapshot at once, stamped with
    ``fetched_at``, and an unfinished job gets a sync queued: the worker plans and copies its days from Twilio's
    answer exactly as after a webhook. The days are not planned here, so the CLI and the web never copy, write a
    manifest or finish a job themselves. A 404 from Twilio is shown as it is and changes nothing (the sync's
    rules decide when a job counts as gone)."""
    job = require_job(svc, job_sid)
    if job.origin == "listed":
        raise Conflict(f"{job_sid} is a day file Twilio listed, not a job at Twilio: there is no job to read")
    tj = svc.twilio_for(job.account_sid).fetch_job(job_sid)
    svc.jobs.update_job(job_sid, twilio=fetched(tj))
    if not job.state.final:
        svc.enqueuer.sync(job_sid)
    return require_job(svc, job_sid)


def adopt(svc: Services, job_sid: str, resource_type: str | None = None, account: str | None = None) -> JobRecord:
    """Track a job created elsewhere (in ``account``: SID or label); its webhook is not ours, so the poller will
    finish it."""
    validate_job_sid(job_sid)
    existing = svc.jobs.get_job(job_sid)
    if existing is not None:
        return existing
    owner = svc.accounts.resolve(account)
    tj = svc.twilio_for(owner.sid).fetch_job(job_sid)  # TwilioNotFound -> 404 to the caller
    rt = tj.resource_type or resource_type
    if rt not in RESOURCE_TYPES:
        raise RequestError("Twilio did not say the job's resource_type; pass resource_type")
    if not (tj.start_day and tj.end_day and DAY_RE.fullmatch(tj.start_day) and DAY_RE.fullmatch(tj.end_day)):
        raise TwilioError(f"Twilio's job {job_sid} has no valid start_day/end_day")
    record = record_of(tj, str(rt), owner.sid, origin="adopted")
    if svc.jobs.add_job(record):
        JOBS.labels("adopted").inc()
    svc.enqueuer.sync(job_sid)
    return svc.jobs.get_job(job_sid) or record


def cancel(svc: Services, job_sid: str) -> JobRecord:
    job = require_job(svc, job_sid)
    if job.state.final:
        raise Conflict(f"job {job_sid} is already {job.state.value}")
    try:
        svc.twilio_for(job.account_sid).delete_job(job_sid)
    except TwilioNotFound:
        log.warning("cancel: Twilio no longer has job %s", job_sid)
    finish(svc, job_sid, JobState.CANCELLED, error="cancelled on request")
    return require_job(svc, job_sid)


def requeue(svc: Services, job_sid: str, days: list[str] | None = None) -> list[str]:
    """Put failed days (or the given ones) back to pending and queue their copies; reopens a final job."""
    job = require_job(svc, job_sid)
    if job.state == JobState.CANCELLED:
        raise Conflict(f"job {job_sid} was cancelled")
    records = svc.days.get_days(job_sid)
    wanted = days or [d for d, r in records.items() if r.state == DayState.FAILED]
    for day in wanted:
        if day not in records:
            raise RequestError(f"day {day} is not part of job {job_sid}")
    if not wanted:
        return []
    for day in wanted:
        rec = records[day]
        rec.state, rec.error, rec.attempts = DayState.PENDING, None, 0
        if rec.twilio_status == "failed":
            rec.twilio_status = None  # let Twilio's current answer decide again
        svc.days.put_day(job_sid, rec)
    if job.state.final:
        svc.jobs.reopen_job(job_sid)
    svc.enqueuer.sync(job_sid)
    return wanted
