"""Domain operations shared by the HTTP API, the CLI and the workers: submit, track, cancel, status, requeue, sync.

Twilio is the source of truth for a job's state; the webhook only tells us *when* to look. ``sync_job`` reads the
job from Twilio, records the per-day plan and enqueues one unique copy task per completed day. Finishing a job
(manifest in S3) is the workers' business, because it needs the S3 sink.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from redis.exceptions import RedisError

from app.config import RESOURCE_TYPES
from app.context import Services
from app.metrics import SYNC_FAILURES
from app.registry import DayRecord, DayState, JobRecord, JobState, QuotaExceeded, hash_token
from app.twilio_api import (
    DAY_RE,
    JOB_SID_RE,
    DayDetail,
    TwilioError,
    TwilioJob,
    TwilioNotFound,
    TwilioRejected,
    TwilioUnavailable,
)

log = logging.getLogger(__name__)

MAX_DAYS_PER_JOB = 366
TOKEN_BYTES = 32  # 256 bits in every webhook URL
MAX_SYNC_DELAY = 900
TWILIO_RETENTION_S = 7 * 86400

# Twilio's day statuses, lower-cased (Twilio's casing has varied); which are final and which mean "copy it".
COPY_STATUSES = {"completed", "completedemptyrecords"}
FAILED_STATUSES = {"failed"}
CANCELLED_STATUSES = {"deletedbyuserrequest", "runningtobedeleted"}
WAITING_STATUSES = {"submitted", "running", "errorduringrun"}


class RequestError(ValueError):
    """Bad input from a user: the API answers 400 with this message."""


class NotFound(LookupError):
    pass


class Conflict(RuntimeError):
    pass


class SubmitUncertain(RuntimeError):
    """Twilio may have created the job but we could not learn or record it: retrying could duplicate it.

    Its pending record (saved before the create call, keyed by the webhook token) lets the poller adopt the
    job if it exists (``reconcile_pending``), so the user should look at the job list rather than resubmit.
    """


# -- validation -------------------------------------------------------------------------------------------


def utc_today() -> date:
    return datetime.now(UTC).date()


def parse_day(value: Any, name: str) -> date:
    if not isinstance(value, str) or not DAY_RE.match(value):
        raise RequestError(f"{name} must be a day as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RequestError(f"{name} is not a real calendar day: {value}") from None


def validate_resource_type(value: Any) -> str:
    if value not in RESOURCE_TYPES:
        raise RequestError(f"resource_type must be one of {', '.join(RESOURCE_TYPES)}")
    return str(value)


def validate_job_sid(value: Any) -> str:
    if not isinstance(value, str) or not JOB_SID_RE.match(value):
        raise RequestError("job_sid must look like JS followed by 32 hex digits")
    return value


def split_range(start: date, end: date, max_days: int = MAX_DAYS_PER_JOB) -> list[tuple[date, date]]:
    """Consecutive chunks of at most ``max_days`` days covering start..end inclusive."""
    chunks = []
    cursor = start
    while cursor <= end:
        chunk_end = min(end, cursor + timedelta(days=max_days - 1))
        chunks.append((cursor, chunk_end))
        cursor = chunk_end + timedelta(days=1)
    return chunks


def days_between(start: date, end: date) -> list[str]:
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@dataclass(frozen=True)
class SubmitRequest:
    resource_type: str
    start_day: date
    end_day: date
    friendly_name: str
    email: str | None

    @classmethod
    def from_body(cls, body: Any, today: date | None = None) -> SubmitRequest:
        if not isinstance(body, dict):
            raise RequestError("body must be a JSON object")
        unknown = set(body) - {"resource_type", "start_day", "end_day", "friendly_name", "email"}
        if unknown:
            raise RequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
        rt = validate_resource_type(body.get("resource_type"))
        start = parse_day(body.get("start_day"), "start_day")
        end = parse_day(body.get("end_day"), "end_day")
        if start > end:
            raise RequestError("start_day must not be after end_day")
        latest = (today or utc_today()) - timedelta(days=2)
        if end > latest:
            raise RequestError(f"end_day must be at most {latest.isoformat()} (two days before today, UTC)")
        name = body.get("friendly_name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise RequestError("friendly_name must be a string of at most 200 characters")
        name = name or f"bulkexport-relay {rt} {start}..{end}"
        email = body.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email or len(email) > 254):
            raise RequestError("email must be an e-mail address")
        return cls(rt, start, end, name, email)


# -- submit / track / cancel ------------------------------------------------------------------------------


def webhook_url(svc: Services, token: str) -> str:
    return f"{svc.settings.public_base_url}/hooks/bulkexport?{urlencode({'token': token})}"


@dataclass
class SubmitResult:
    jobs: list[JobRecord]
    error: Exception | None = None  # set when a later chunk failed after earlier ones were created


def submit(svc: Services, req: SubmitRequest) -> SubmitResult:
    """Create one Twilio job per ≤366-day chunk, after reserving today's quota for all of them."""
    chunks = split_range(req.start_day, req.end_day)
    total_days = (req.end_day - req.start_day).days + 1
    quota = svc.settings.daily_day_quota
    if total_days > quota:
        # Waiting for tomorrow would not help (a 429 would make clients retry forever): say what to do instead.
        raise RequestError(
            f"{total_days} days exceed Twilio's {quota} requested days per UTC day: submit at most {quota} days "
            "per request, one request per UTC day"
        )
    today = utc_today().isoformat()
    svc.registry.reserve_quota(today, total_days)  # raises QuotaExceeded
    created: list[JobRecord] = []
    for index, (start, end) in enumerate(chunks):
        name = req.friendly_name if len(chunks) == 1 else f"{req.friendly_name} ({index + 1}/{len(chunks)})"
        try:
            created.append(_submit_chunk(svc, req, start, end, name))
        except (TwilioError, SubmitUncertain, RedisError) as exc:
            # A chunk that may exist at Twilio keeps its share of the quota (Twilio may have counted it).
            maybe_created = index + 1 if isinstance(exc, SubmitUncertain) else index
            _release_quota(svc, today, sum((e - s).days + 1 for s, e in chunks[maybe_created:]))
            if not created:
                raise
            return SubmitResult(created, exc)
    return SubmitResult(created)


def _release_quota(svc: Services, today: str, days: int) -> None:
    try:
        svc.registry.release_quota(today, days)
    except RedisError:  # the quota then errs on the safe side (too little left today), never the other way
        log.warning("could not give back %d days of today's quota (Redis unavailable)", days)


def _submit_chunk(svc: Services, req: SubmitRequest, start: date, end: date, name: str) -> JobRecord:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    token_hash = hash_token(token)
    svc.registry.add_pending(
        token_hash,
        {"resource_type": req.resource_type, "start_day": start.isoformat(), "end_day": end.isoformat()},
    )
    try:
        tj = svc.twilio.create_job(
            req.resource_type,
            start.isoformat(),
            end.isoformat(),
            name,
            webhook_url(svc, token),
            svc.settings.webhook_method,
            req.email,
            token=token,
        )
    except TwilioUnavailable as exc:
        if exc.status == 429:
            svc.registry.drop_pending(token_hash)  # Twilio never processed it
            raise
        # Ambiguous (5xx or no answer after sending): the job may exist. The pending record stays so the
        # poller can find it by its token (reconcile_pending) instead of leaving an untracked job at Twilio.
        raise SubmitUncertain(
            f"Twilio's answer to creating the {req.resource_type} job for {start}..{end} was lost ({exc}); the job "
            "may exist: if it does, the poller starts tracking it within minutes. Check the job list before "
            "submitting again."
        ) from exc
    except TwilioNotFound as exc:
        svc.registry.drop_pending(token_hash)
        # Not "no such job" for the caller: the create endpoint itself is missing (wrong base URL, API change).
        raise TwilioError(f"Twilio answered 404 to creating a job ({exc})", exc.status, exc.code) from exc
    except TwilioError:
        svc.registry.drop_pending(token_hash)
        raise
    # Keep what we sent: Twilio's create answer may echo nulls.
    record = JobRecord(
        job_sid=tj.job_sid,
        resource_type=req.resource_type,
        start_day=start.isoformat(),
        end_day=end.isoformat(),
        friendly_name=name,
        email=req.email or "",
        origin="api",
        token_hash=token_hash,
        twilio=tj.snapshot(),
    )
    try:
        svc.registry.add_job(record)
    except RedisError as exc:
        raise SubmitUncertain(
            f"Twilio created job {tj.job_sid} but it could not be recorded ({exc}); the poller starts tracking it "
            "once storage is back. Do not submit it again."
        ) from exc
    log.info("submitted job", extra={"job_sid": tj.job_sid, "resource_type": req.resource_type})
    return record


def adopt(svc: Services, job_sid: str, resource_type: str | None = None) -> JobRecord:
    """Track a job created elsewhere; its webhook is not ours, so the poller will finish it."""
    validate_job_sid(job_sid)
    existing = svc.registry.get_job(job_sid)
    if existing is not None:
        return existing
    tj = svc.twilio.fetch_job(job_sid)  # TwilioNotFound -> 404 to the caller
    rt = tj.resource_type or resource_type
    if rt not in RESOURCE_TYPES:
        raise RequestError("Twilio did not say the job's resource_type; pass resource_type")
    if not (tj.start_day and tj.end_day and DAY_RE.match(tj.start_day) and DAY_RE.match(tj.end_day)):
        raise TwilioError(f"Twilio's job {job_sid} has no valid start_day/end_day")
    record = JobRecord(
        job_sid=job_sid,
        resource_type=str(rt),
        start_day=tj.start_day,
        end_day=tj.end_day,
        friendly_name=tj.friendly_name or "",
        origin="adopted",
        twilio=tj.snapshot(),
    )
    svc.registry.add_job(record)
    svc.enqueuer.sync(job_sid)
    return svc.registry.get_job(job_sid) or record


def cancel(svc: Services, job_sid: str) -> JobRecord:
    job = require_job(svc, job_sid)
    if job.state.final:
        raise Conflict(f"job {job_sid} is already {job.state.value}")
    try:
        svc.twilio.delete_job(job_sid)
    except TwilioNotFound:
        log.warning("cancel: Twilio no longer has job %s", job_sid)
    svc.registry.finish_job(job_sid, JobState.CANCELLED, error="cancelled on request")
    return require_job(svc, job_sid)


def require_job(svc: Services, job_sid: str) -> JobRecord:
    validate_job_sid(job_sid)
    job = svc.registry.get_job(job_sid)
    if job is None:
        raise NotFound(f"job {job_sid} is not tracked here")
    return job


def requeue(svc: Services, job_sid: str, days: list[str] | None = None) -> list[str]:
    """Put failed days (or the given ones) back to pending and queue their copies; reopens a final job."""
    job = require_job(svc, job_sid)
    if job.state == JobState.CANCELLED:
        raise Conflict(f"job {job_sid} was cancelled")
    records = svc.registry.get_days(job_sid)
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
        svc.registry.put_day(job_sid, rec)
    if job.state.final:
        svc.registry.reopen_job(job_sid)
    svc.enqueuer.sync(job_sid)
    return wanted


def job_view(svc: Services, job: JobRecord) -> dict[str, Any]:
    """The status document the API and CLI show: our record, Twilio's last view, per-day copy state."""
    days = svc.registry.get_days(job.job_sid)
    counts: dict[str, int] = {}
    for rec in days.values():
        counts[rec.state.value] = counts.get(rec.state.value, 0) + 1
    return {
        "job_sid": job.job_sid,
        "resource_type": job.resource_type,
        "start_day": job.start_day,
        "end_day": job.end_day,
        "friendly_name": job.friendly_name,
        "email": job.email or None,
        "origin": job.origin,
        "state": job.state.value,
        "error": job.error or None,
        "last_sync_error": job.last_sync_error or None,
        "manifest_key": job.manifest_key or None,
        "created_at": _iso(job.created_at),
        "updated_at": _iso(job.updated_at),
        "webhooks_received": job.webhooks_received,
        "twilio": job.twilio,
        "day_counts": counts,
        "days": [
            {
                "day": r.day,
                "state": r.state.value,
                "twilio_status": r.twilio_status,
                "key": r.key,
                "size": r.size,
                "sha256": r.sha256,
                "records": r.records,
                "attempts": r.attempts,
                "error": r.error,
            }
            for r in days.values()
        ],
    }


def file_created_at(rec: DayRecord, job: JobRecord) -> float:
    """When Twilio made the day's file (it deletes it 7 days later); our job's creation time if unknown."""
    if rec.twilio_create_date:
        try:
            return datetime.fromisoformat(rec.twilio_create_date.replace("Z", "+00:00")).timestamp()
        except ValueError:
            log.warning("unparseable Twilio create_date %r", rec.twilio_create_date)
    return job.created_at


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- sync ---------------------------------------------------------------------------------------------------

LOST_AFTER_NOT_FOUND = 3  # consecutive 404s (over several polls) before a job counts as gone from Twilio


@dataclass
class SyncPlan:
    """What Twilio's answer means for each day of the job."""

    statuses: dict[str, str] = field(default_factory=dict)  # day -> lower-cased Twilio status
    failed_reasons: dict[str, str] = field(default_factory=dict)  # day -> why we count it as failed
    cancelled: bool = False

    @property
    def twilio_final(self) -> bool:
        return bool(self.statuses) and not any(s in WAITING_STATUSES for s in self.statuses.values())


def _normalise(status: str) -> str:
    """Lower-case; any status we do not know counts as still running (waiting is safe, guessing final is not)."""
    value = status.lower()
    if value not in COPY_STATUSES | FAILED_STATUSES | CANCELLED_STATUSES | WAITING_STATUSES:
        log.warning("unknown Twilio day status %r: treated as still running", status)
        return "running"
    return value


def _counts_cover_every_day(details: list[DayDetail], n_days: int) -> bool:
    final = all(_normalise(d.status) not in WAITING_STATUSES for d in details)
    return bool(details) and final and sum(d.count or 0 for d in details) >= n_days


def plan_days(job: JobRecord, details: list[DayDetail], files: set[str] | None) -> SyncPlan:
    """Map every day of the job's range to a status.

    Days Twilio lists outside the range are ignored. Days in the range that no entry lists are still running,
    unless some entries carry ``days: null``, or every entry is final and their counts cover the range; then
    ``files`` (the days Twilio holds files for, from ListDay)
    fills the gaps: a day with a file is Completed; one without is CompletedEmptyRecords when that is the only
    other final status, and Failed (requeue-able, never silently "empty") when Twilio also reports failures.
    ``files=None`` (ListDay refused or not asked): such days are Completed, so the copy task asks FetchDay,
    whose answer decides (a file is copied; none is retried, then failed and requeue-able), never a guess.
    """
    all_days = days_between(date.fromisoformat(job.start_day), date.fromisoformat(job.end_day))
    in_range = set(all_days)
    plan = SyncPlan()
    unlisted: list[str] = []
    for d in details:
        status = _normalise(d.status)
        if status in CANCELLED_STATUSES:
            plan.cancelled = True
        if d.days is None:
            unlisted.append(status)
            continue
        for day in d.days:
            if day in in_range:
                plan.statuses[day] = status
    missing = [day for day in all_days if day not in plan.statuses]
    if not missing:
        return plan
    if not unlisted and _counts_cover_every_day(details, len(all_days)):
        # Every group is final and their counts account for every day, yet some days are in no list (Twilio
        # has been seen to leave days out): the files decide.
        _decide_from_files(plan, missing, {_normalise(d.status) for d in details}, files)
        return plan
    if not unlisted:
        plan.statuses.update(dict.fromkeys(missing, "running" if details else "submitted"))
    elif len(set(unlisted)) == 1:
        plan.statuses.update(dict.fromkeys(missing, unlisted[0]))
    elif any(s in WAITING_STATUSES for s in unlisted):
        plan.statuses.update(dict.fromkeys(missing, "running"))
    else:
        _decide_from_files(plan, missing, set(unlisted), files)
    return plan


def _decide_from_files(plan: SyncPlan, missing: list[str], statuses: set[str], files: set[str] | None) -> None:
    """A day with a file (or, files unknown, possibly one) is Completed. One without is Failed (requeue-able) if
    the job reports failures, empty only if it reports empty days, else Completed: FetchDay decides, and a file
    that never comes fails the day (requeue-able). Never silently "empty" on a guess."""
    for day in missing:
        if files is None or day in files:
            plan.statuses[day] = "completed"
        elif "failed" in statuses:
            plan.statuses[day] = "failed"
            plan.failed_reasons[day] = "Twilio listed no such day; no file and the job reports failed days"
        elif "completedemptyrecords" in statuses:
            plan.statuses[day] = "completedemptyrecords"
        else:
            plan.statuses[day] = "completed"


@dataclass
class SyncResult:
    job_sid: str
    state: JobState
    queued_copies: int = 0
    ready_to_finish: bool = False
    twilio_final: bool = False  # Twilio has said its last word on every day
    not_found: bool = False  # Twilio answered 404 for the job (counted towards LOST_AFTER_NOT_FOUND)


MAX_RESYNCS = 3  # a sync repeats itself at most this often for webhooks that arrived while it ran


def sync_job(svc: Services, job_sid: str) -> SyncResult:
    """Ask Twilio for the job, record the day plan, queue copies; tell the caller when all days are final.

    A completion webhook that arrives while this job's sync is running is not queued (the sync's unique id is
    taken) but flags the job: if Twilio was not final when we looked, we look again at once rather than leave
    the job to the poller's backoff (up to 15 minutes).
    """
    result = _sync_once(svc, job_sid)
    for _ in range(MAX_RESYNCS):
        if result.twilio_final or result.state.final or result.not_found:
            break  # (a 404 again at once would count as a second miss within one sync: leave it to the poller)
        if not svc.registry.take_resync_request(job_sid):
            break
        log.info("webhook arrived during the sync: syncing again", extra={"job_sid": job_sid})
        result = _sync_once(svc, job_sid)
    return result


def _sync_once(svc: Services, job_sid: str) -> SyncResult:
    job = svc.registry.get_job(job_sid)
    if job is None:
        svc.registry.deactivate(job_sid)
        raise NotFound(f"sync: job {job_sid} is not tracked")
    if job.state.final:
        svc.registry.deactivate(job_sid)
        return SyncResult(job_sid, job.state)
    svc.registry.count_sync(job_sid)
    try:
        tj = svc.twilio.fetch_job(job_sid)
    except TwilioNotFound:
        return _twilio_lost_job(svc, job)
    except TwilioError as exc:
        _sync_failed(svc, job, exc)
        raise  # RQ retries the sync a few times; the poller takes it up again after the backoff
    svc.registry.update_job(job_sid, twilio=tj.snapshot(), not_found=0, last_sync_error="")
    needs_files = any(d.days is None for d in tj.details)
    files = day_files(svc, job.resource_type) if needs_files or _has_copyable(tj) else {}
    plan = plan_days(job, tj.details, None if files is None else set(files))
    files = files or {}
    if plan.cancelled:
        svc.registry.finish_job(job_sid, JobState.CANCELLED, error="deleted at Twilio")
        return SyncResult(job_sid, JobState.CANCELLED)
    queued = _apply_plan(svc, job, plan, files)
    records = svc.registry.get_days(job_sid)
    all_final = plan.twilio_final and all(records.get(d) and records[d].state.final for d in plan.statuses)
    state = JobState.COPYING if plan.twilio_final else JobState.WAITING
    if not all_final:
        # The poller looks again later: Twilio still working, or copies in flight (in case one is lost).
        svc.registry.schedule_sync(job_sid, time.time() + _next_sync_delay(svc, job), state)
    return SyncResult(job_sid, state, queued, all_final, plan.twilio_final)


def _sync_failed(svc: Services, job: JobRecord, exc: TwilioError) -> None:
    """Make a failing sync visible (job status, metric, log) and keep the poller from retrying it every poll.

    An answer we cannot read (a new ``details`` shape, a 401/403 after a key change) would otherwise fail the
    sync forever with nothing on the job to show for it."""
    SYNC_FAILURES.labels(type(exc).__name__).inc()
    svc.registry.update_job(job.job_sid, last_sync_error=str(exc)[:500])
    svc.registry.schedule_sync(job.job_sid, time.time() + _next_sync_delay(svc, job))
    log.warning("sync failed: %s", exc, extra={"job_sid": job.job_sid})


def _has_copyable(tj: TwilioJob) -> bool:
    return any(d.status.lower() in COPY_STATUSES for d in tj.details)


def day_files(svc: Services, resource_type: str) -> dict[str, tuple[int, str | None]] | None:
    """day -> (size, create_date) for every file Twilio holds (one paged ListDay); None if refused."""
    try:
        listed = sorted(svc.twilio.list_days(resource_type), key=lambda f: f.create_date or "")
        return {f.day: (f.size, f.create_date) for f in listed}  # a day listed twice: the newest export wins
    except TwilioRejected as exc:
        log.warning("ListDay refused (%s); copying without expected sizes", exc)
        return None


def _apply_plan(svc: Services, job: JobRecord, plan: SyncPlan, files: dict[str, tuple[int, str | None]]) -> int:
    svc.registry.ensure_days(job.job_sid, [DayRecord(day=d) for d in plan.statuses])
    records = svc.registry.get_days(job.job_sid)
    queued = 0
    for day, status in sorted(plan.statuses.items()):
        rec = records[day]
        size, create_date = files.get(day, (None, None))
        changed = rec.twilio_status != status or (create_date and rec.twilio_create_date != create_date)
        if changed and not rec.state.final:
            rec.twilio_status = status
            rec.twilio_create_date = create_date or rec.twilio_create_date
            if status in FAILED_STATUSES:
                rec.state = DayState.FAILED
                rec.error = plan.failed_reasons.get(day, "Twilio reported the day as Failed")
            svc.registry.put_day(job.job_sid, rec)
        copyable = status in COPY_STATUSES and rec.state in (DayState.PENDING, DayState.COPYING)
        if copyable and svc.enqueuer.copy_day(job.job_sid, job.resource_type, day, size, create_date):
            queued += 1
    return queued


def _next_sync_delay(svc: Services, job: JobRecord) -> float:
    base = svc.settings.poll_interval_seconds
    return float(min(base * 2 ** min(job.syncs // 3, 6), max(base, MAX_SYNC_DELAY)))


def _twilio_lost_job(svc: Services, job: JobRecord) -> SyncResult:
    """Twilio answered 404 for the job. Only after several such answers over time (or past Twilio's 7-day
    retention) is it gone: then days not yet copied fail (copies already in flight may still finish)."""
    misses = int(svc.registry.r.hincrby(svc.registry.job_key(job.job_sid), "not_found", 1))
    retention_over = time.time() - job.created_at > TWILIO_RETENTION_S
    if misses < LOST_AFTER_NOT_FOUND and not retention_over:
        svc.registry.schedule_sync(job.job_sid, time.time() + _next_sync_delay(svc, job))
        return SyncResult(job.job_sid, job.state, not_found=True)
    records = svc.registry.get_days(job.job_sid)
    for rec in records.values():
        if rec.state == DayState.PENDING:
            rec.state, rec.error = DayState.FAILED, "job no longer exists at Twilio"
            svc.registry.put_day(job.job_sid, rec)
    if not records:
        svc.registry.finish_job(job.job_sid, JobState.FAILED, error="job no longer exists at Twilio")
        return SyncResult(job.job_sid, JobState.FAILED)
    if not all(r.state.final for r in svc.registry.get_days(job.job_sid).values()):
        svc.registry.schedule_sync(job.job_sid, time.time() + _next_sync_delay(svc, job))
        return SyncResult(job.job_sid, JobState.COPYING)
    return SyncResult(job.job_sid, JobState.COPYING, ready_to_finish=True)


def reconcile_pending(svc: Services, older_than: float = 60.0) -> list[str]:
    """Adopt jobs whose create call failed ambiguously but that Twilio did create (found by our token)."""
    adopted: list[str] = []
    now = time.time()
    pending = {
        h: req
        for h, req in svc.registry.pending_submissions().items()
        if now - float(req.get("created_at", now)) > older_than and req.get("resource_type") in RESOURCE_TYPES
    }
    for rt in sorted({req["resource_type"] for req in pending.values()}):
        for tj in svc.twilio.list_jobs(rt):
            token = parse_qs(urlsplit(tj.webhook_url or "").query).get("token", [""])[0]
            token_hash = hash_token(token) if token else ""
            if token_hash not in pending or svc.registry.get_job(tj.job_sid) is not None:
                continue
            req = pending[token_hash]
            svc.registry.add_job(
                JobRecord(
                    job_sid=tj.job_sid,
                    resource_type=rt,
                    start_day=req["start_day"],
                    end_day=req["end_day"],
                    friendly_name=tj.friendly_name or "",
                    origin="api",
                    token_hash=token_hash,
                    twilio=tj.snapshot(),
                )
            )
            log.warning("recovered a job created despite an error answer", extra={"job_sid": tj.job_sid})
            adopted.append(tj.job_sid)
    return adopted


__all__ = [
    "Conflict",
    "NotFound",
    "QuotaExceeded",
    "RequestError",
    "SubmitRequest",
    "adopt",
    "cancel",
    "job_view",
    "requeue",
    "submit",
    "sync_job",
]
