"""Copy one completed day into S3, exactly once: claim, lock, "already stored?", download + verify + upload, record.

Exactly-once comes from three layers: RQ's unique job id per (job, resource type, day); the registry's atomic
claim (a copied/empty day is never copied again); and a Redis lock per S3 object, because two jobs exporting the
same day write the same key. Under that lock the object already in S3 is compared with Twilio's
(size, create_date) once (``S3Sink.stored_day``): the same file is not downloaded again, a newer export
replaces it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from app.feeds import coverage
from app.feeds.store import KEPT_GONE_STATES
from app.jobs import events
from app.jobs.lifecycle import day_files
from app.jobs.records import DayRecord, DayState, JobState
from app.platform.metrics import COPY_BYTES, COPY_RETRIES, COPY_SECONDS, DAYS
from app.platform.url_policy import download_policy
from app.services import Services
from app.twilio.accounts import owner_of
from app.twilio.client import TwilioNotFound
from app.twilio.statuses import EMPTY
from workers.copy import copy_link_to_s3
from workers.copy_errors import CopyBusy, DayNotReady
from workers.sink import S3Sink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayTask:
    job_sid: str
    resource_type: str
    day: str
    size: int | None
    create_date: str | None
    task_id: str
    account_sid: str = ""  # the job's account (filled from the job record)

    @property
    def log_extra(self) -> dict[str, Any]:
        return {
            "job_sid": self.job_sid,
            "resource_type": self.resource_type,
            "day": self.day,
            "task_id": self.task_id,
        }


def copy_one_day(svc: Services, sink: S3Sink, task: DayTask, lock_seconds: int, max_attempts: int) -> DayRecord | None:
    """The day's final record, or None when there was nothing to do (job gone or cancelled, day already done)."""
    job = svc.jobs.get_job(task.job_sid)
    if job is None or job.state == JobState.CANCELLED:
        log.info("job cancelled or gone: copy skipped", extra=task.log_extra)
        return None
    task = replace(task, account_sid=job.account_sid)
    prev = svc.days.claim_day(task.job_sid, task.day)
    if prev in (DayState.COPIED, DayState.EMPTY):
        log.info("day already done", extra=task.log_extra)
        return None
    current = svc.days.get_day(task.job_sid, task.day)
    if current is not None and current.attempts > max_attempts:
        # RQ's retry budget restarts when a task is re-enqueued (e.g. after its worker was killed without
        # running our failure callback); the attempts counted in the registry do not.
        record_failure(svc, task.job_sid, task.day, f"gave up after {max_attempts} attempts", True, "attempts")
        return None
    scope = f"{task.account_sid}:{task.resource_type}"  # one in-flight copy per S3 object
    if not svc.locks.acquire_copy_lock(scope, task.day, task.task_id, lock_seconds):
        raise CopyBusy(f"{task.resource_type}/{task.day} is being copied by another task")
    try:
        kept_gone = svc.feeds.get_day(owner_of(task.resource_type, task.account_sid), task.day)
        if kept_gone is not None and kept_gone.state in KEPT_GONE_STATES:
            return _not_copied_kept_gone(svc, task, current, kept_gone.state)
        rec = _copy_locked(svc, sink, _fresh(svc, task, current), current or DayRecord(day=task.day))
    finally:
        svc.locks.release_copy_lock(scope, task.day, task.task_id)
    svc.days.put_day(task.job_sid, rec)
    coverage.record_job_day(svc.feeds, svc.settings.sync, job, rec)  # visible at once, not only when the job ends
    if svc.settings.lake is not None and rec.state == DayState.COPIED and rec.sha256 and rec.records:
        svc.enqueuer.lake_day(task.account_sid, task.resource_type, task.day, rec.key or "", rec.sha256, rec.records)
    DAYS.labels(rec.state.value).inc()
    log.info("day %s", rec.state.value, extra=task.log_extra | {"key": rec.key, "records": rec.records})
    return rec


def _not_copied_kept_gone(svc: Services, task: DayTask, current: DayRecord | None, state: str) -> DayRecord:
    """A job's day the owner deleted (or, with REFETCH_VANISHED=never, let vanish) after the job was submitted or
    whose range spans it: never copied back by a job (only ``restore-day`` or ``copy-day`` lift a tombstone). The
    job's day is final, failed with the reason; coverage keeps the tombstone (app/feeds/coverage.py)."""
    rec = replace(current or DayRecord(day=task.day), state=DayState.FAILED, error=f"not copied: the day is {state}")
    svc.days.put_day(task.job_sid, rec)
    log.info("day kept %s: not copied", state, extra=task.log_extra)
    return rec


def _fresh(svc: Services, task: DayTask, current: DayRecord | None) -> DayTask:
    """On a retry, or without a size, ask ListDay again: a newer export may have replaced the file meanwhile."""
    if task.size is not None and (current is None or current.attempts <= 1):
        return task
    listed = (day_files(svc, task.resource_type, task.account_sid) or {}).get(task.day)  # None: refused, no size
    if listed is None:
        return task
    size, create_date = listed
    return replace(task, size=size, create_date=create_date)


def _copy_locked(svc: Services, sink: S3Sink, task: DayTask, current: DayRecord) -> DayRecord:
    """Runs under the per-object lock, so what S3 says here still holds when the sink writes."""
    key = sink.day_key(task.resource_type, task.day, task.job_sid, task.account_sid)
    stored = sink.stored_day(key, task.size, task.create_date)
    if stored is not None and _found_corrupt(svc, task):
        log.warning("the object looks stored but coverage found it corrupt: copied again", extra=task.log_extra)
    elif stored is not None:  # this very Twilio file is already there, verified: no download
        log.info("already stored (sha256 %s): not copied again", stored.sha256, extra=task.log_extra)
        return _done(current, key, stored.size, stored.sha256, stored.records, stored.etag)
    try:
        link = svc.twilio_for(task.account_sid).day_link(task.resource_type, task.day)
    except TwilioNotFound:
        if current.twilio_status == EMPTY:
            current.state, current.error, current.key = DayState.EMPTY, None, None
            current.size, current.records = 0, 0
            return current
        raise DayNotReady(f"Twilio has no file for {task.resource_type}/{task.day} yet") from None
    metadata = {
        "job_sid": task.job_sid,
        "resource_type": task.resource_type,
        "day": task.day,
        "account_sid": task.account_sid,
        "twilio_create_date": task.create_date or "",
    }
    started = time.monotonic()
    result = copy_link_to_s3(link, task.size, sink, key, metadata, policy=download_policy(svc.settings))
    COPY_SECONDS.observe(time.monotonic() - started)
    COPY_BYTES.inc(result.size)
    current.twilio_create_date = task.create_date or current.twilio_create_date
    return _done(current, result.key, result.size, result.sha256, result.records, result.etag)


def _found_corrupt(svc: Services, task: DayTask) -> bool:
    """Whether coverage holds the day as ``corrupt`` (a listing or ``relay verify`` found its object changed):
    then what ``S3Sink.stored_day`` read (metadata, tags or manifest, which may have survived the change) is not
    taken as proof that it is stored (app/bucket/check.py). Asked only when ``stored_day`` found this very Twilio
    file, so a first copy pays nothing (one Redis read otherwise)."""
    rec = svc.feeds.get_day(owner_of(task.resource_type, task.account_sid), task.day)
    return rec is not None and rec.state == "corrupt"


def _done(rec: DayRecord, key: str, size: int, sha256: str | None, records: int | None, etag: str | None) -> DayRecord:
    """Copied, or empty when Twilio said so or the file holds no record (an unknown count is not "empty")."""
    empty = rec.twilio_status == EMPTY or records == 0
    rec.state = DayState.EMPTY if empty else DayState.COPIED
    rec.key, rec.size, rec.sha256, rec.records, rec.error = key, size, sha256, records, None
    rec.etag = etag or None
    return rec


def record_failure(svc: Services, job_sid: str, day: str, error: str, final: bool, reason: str) -> None:
    """A failed attempt (RQ's failure callback, ``workers.tasks.on_copy_failure``) or the attempts cap reached
    (``copy_one_day``); ``final`` makes the day FAILED, else it goes back to PENDING for the next attempt."""
    COPY_RETRIES.labels(reason).inc()
    rec = svc.days.get_day(job_sid, day) or DayRecord(day=day)
    if rec.state in (DayState.COPIED, DayState.EMPTY):
        return
    rec.error = error[:500]
    rec.state = DayState.FAILED if final else DayState.PENDING
    svc.days.put_day(job_sid, rec)
    if final:
        DAYS.labels("failed").inc()
        events.day_failed(svc, job_sid, rec)  # queued only, never raises
        log.error("day failed after retries: %s", error, extra={"job_sid": job_sid, "day": day})
