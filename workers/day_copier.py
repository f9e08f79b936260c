"""Copy one completed day into S3, and finish a job (manifest) once all its days are final.

Exactly-once comes from three layers: RQ's unique job id per (job, resource type, day); the registry's atomic
claim (a copied/empty day is never copied again); and a Redis lock per S3 object, because two jobs exporting the
same day write the same key. Before downloading, the object already in S3 is compared with Twilio's
(size, create_date): the same file is not copied twice, a newer export replaces it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from app.context import Services
from app.exports import day_files, days_between
from app.metrics import COPY_BYTES, COPY_RETRIES, COPY_SECONDS, DAYS, JOBS
from app.registry import DayRecord, DayState, JobState
from app.twilio_api import TwilioNotFound
from workers.copy import copy_link_to_s3
from workers.s3_sink import UNKNOWN, MaybeStored, PermanentS3Error, S3Sink, holds_twilio_file

log = logging.getLogger(__name__)


class CopyBusy(RuntimeError):
    """Another worker is copying the same S3 object right now; RQ retries this task later."""


class DayNotReady(RuntimeError):
    """Twilio says the day is done but has no file for it yet; retried."""


@dataclass(frozen=True)
class DayTask:
    job_sid: str
    resource_type: str
    day: str
    size: int | None
    create_date: str | None
    task_id: str

    @property
    def log_extra(self) -> dict[str, Any]:
        return {
            "job_sid": self.job_sid,
            "resource_type": self.resource_type,
            "day": self.day,
            "task_id": self.task_id,
        }


def copy_day(svc: Services, sink: S3Sink, task: DayTask, lock_seconds: int, max_attempts: int) -> DayRecord | None:
    job = svc.registry.get_job(task.job_sid)
    if job is None or job.state == JobState.CANCELLED:
        log.info("job cancelled or gone: copy skipped", extra=task.log_extra)
        return None
    prev = svc.registry.claim_day(task.job_sid, task.day)
    if prev in (DayState.COPIED, DayState.EMPTY):
        log.info("day already done", extra=task.log_extra)
        return None
    current = svc.registry.get_day(task.job_sid, task.day)
    if current is not None and current.attempts > max_attempts:
        # RQ's retry budget restarts when a task is re-enqueued (e.g. after its worker was killed without
        # running our failure callback); the attempts counted in the registry do not.
        record_failure(svc, task.job_sid, task.day, f"gave up after {max_attempts} attempts", True, "attempts")
        return None
    if not svc.registry.acquire_copy_lock(task.resource_type, task.day, task.task_id, lock_seconds):
        raise CopyBusy(f"{task.resource_type}/{task.day} is being copied by another task")
    try:
        rec = _copy_locked(svc, sink, _fresh(svc, task, current), current or DayRecord(day=task.day))
    finally:
        svc.registry.release_copy_lock(task.resource_type, task.day, task.task_id)
    svc.registry.put_day(task.job_sid, rec)
    DAYS.labels(rec.state.value).inc()
    log.info("day %s", rec.state.value, extra=task.log_extra | {"key": rec.key, "records": rec.records})
    return rec


def _fresh(svc: Services, task: DayTask, current: DayRecord | None) -> DayTask:
    """On a retry, or without a size, ask ListDay again: a newer export may have replaced the file meanwhile."""
    if task.size is not None and (current is None or current.attempts <= 1):
        return task
    listed = (day_files(svc, task.resource_type) or {}).get(task.day)  # None: refused, copy without a size
    if listed is None:
        return task
    size, create_date = listed
    return replace(task, size=size, create_date=create_date)


def _copy_locked(svc: Services, sink: S3Sink, task: DayTask, current: DayRecord) -> DayRecord:
    """Runs under the per-object lock, so what HeadObject says here still holds when the sink writes."""
    key = sink.day_key(task.resource_type, task.day, task.job_sid)
    existing: MaybeStored = UNKNOWN
    if task.size is not None and task.create_date:
        existing = sink.head(key)
        if existing is not None and holds_twilio_file(existing, task.size, task.create_date):
            meta = existing.metadata  # this very Twilio file is already there, verified: no download
            return _done(current, key, existing.size, meta.get("sha256"), int(meta.get("records", 0)))
    try:
        link = svc.twilio.day_link(task.resource_type, task.day)
    except TwilioNotFound:
        if current.twilio_status == "completedemptyrecords":
            current.state, current.error, current.key = DayState.EMPTY, None, None
            current.size, current.records = 0, 0
            return current
        raise DayNotReady(f"Twilio has no file for {task.resource_type}/{task.day} yet") from None
    metadata = {
        "job_sid": task.job_sid,
        "resource_type": task.resource_type,
        "day": task.day,
        "twilio_create_date": task.create_date or "",
    }
    started = time.monotonic()
    result = copy_link_to_s3(link, task.size, sink, key, metadata, skip_existing=False, existing=existing)
    COPY_SECONDS.observe(time.monotonic() - started)
    if not result.skipped:
        COPY_BYTES.inc(result.size)
    current.twilio_create_date = task.create_date or current.twilio_create_date
    return _done(current, result.key, result.size, result.sha256, result.records)


def _done(rec: DayRecord, key: str, size: int, sha256: str | None, records: int) -> DayRecord:
    empty = rec.twilio_status == "completedemptyrecords" or records == 0
    rec.state = DayState.EMPTY if empty else DayState.COPIED
    rec.key, rec.size, rec.sha256, rec.records, rec.error = key, size, sha256, records, None
    return rec


def record_failure(svc: Services, job_sid: str, day: str, error: str, final: bool, reason: str) -> None:
    """Called by RQ's failure callback for every failed attempt; the last one makes the day FAILED."""
    COPY_RETRIES.labels(reason).inc()
    rec = svc.registry.get_day(job_sid, day) or DayRecord(day=day)
    if rec.state in (DayState.COPIED, DayState.EMPTY):
        return
    rec.error = error[:500]
    rec.state = DayState.FAILED if final else DayState.PENDING
    svc.registry.put_day(job_sid, rec)
    if final:
        DAYS.labels("failed").inc()
        log.error("day failed after retries: %s", error, extra={"job_sid": job_sid, "day": day})


def manifest_key(sink: S3Sink, resource_type: str, job_sid: str) -> str:
    return f"{sink.settings.prefix}{resource_type}/_manifests/{job_sid}.json"


def finish_if_done(svc: Services, sink: S3Sink, job_sid: str) -> bool:
    """Write the manifest and mark the job final once Twilio is done and every day is final (exactly once)."""
    job = svc.registry.get_job(job_sid)
    if job is None or job.state.final or not job.twilio:
        return False
    every_day = days_between(date.fromisoformat(job.start_day), date.fromisoformat(job.end_day))
    if not svc.registry.all_days_final(job_sid, every_day):
        return False  # every day of the range needs a final record, not just the ones seen so far
    days = svc.registry.get_days(job_sid)
    failed = [r.day for r in days.values() if r.state == DayState.FAILED]
    state = JobState.FAILED if failed else JobState.DONE
    key = manifest_key(sink, job.resource_type, job_sid)
    manifest = {
        "job_sid": job_sid,
        "resource_type": job.resource_type,
        "start_day": job.start_day,
        "end_day": job.end_day,
        "state": state.value,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "days": [
            {
                "day": r.day,
                "state": r.state.value,
                "key": r.key,
                "size": r.size,
                "sha256": r.sha256,
                "records": r.records,
                "error": r.error,
            }
            for r in days.values()
        ],
        "copied_days": sum(r.state == DayState.COPIED for r in days.values()),
        "empty_days": [r.day for r in days.values() if r.state == DayState.EMPTY],
        "failed_days": failed,
    }
    error = f"{len(failed)} day(s) failed" if failed else ""
    try:
        sink.put_json(key, manifest)
    except PermanentS3Error as exc:
        # Waiting will not help (missing bucket, access denied): make it visible; a requeue writes it later.
        state, key, error = JobState.FAILED, "", f"{error + '; ' if error else ''}manifest not written: {exc}"
    # A transient S3 error propagates: the task is retried, or the poller's next sync finishes the job.
    if svc.registry.finish_job(job_sid, state, manifest_key=key, error=error):
        JOBS.labels(state.value).inc()
        log.info(
            "job %s",
            state.value,
            extra={"job_sid": job_sid, "manifest": key, "summary": json.dumps(manifest["failed_days"])},
        )
    return True
