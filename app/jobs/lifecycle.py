"""A job's lifecycle after submission, in one place: ask Twilio, plan every day, queue copies, finish the job.

Twilio is the source of truth for a job's state; the webhook and the poller only say *when* to look.
``sync_job`` reads the job from Twilio (FetchJob, plus ListDay for sizes), maps every day of its range to a
status (``plan_days``, pure), records the plan and queues one unique copy task per completed day. A job becomes
final only through ``finish`` (exactly once, atomically in the registry; its days' outcomes then go to the
``JobOutcomes`` the composition root wired in, the feeds' coverage): when every day is final
(``finish_if_done``, which first writes the manifest through a ``ManifestStore``), when Twilio reports it deleted
or lost, or when it is cancelled here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.jobs import events
from app.jobs.documents import day_views, iso
from app.jobs.records import DayRecord, DayState, JobRecord, JobState
from app.jobs.retention import TWILIO_RETENTION_S
from app.platform import clock
from app.platform.days import job_days
from app.platform.metrics import JOBS, SYNC_FAILURES
from app.twilio.accounts import note_outcome
from app.twilio.client import DayDetail, TwilioError, TwilioJob, TwilioNotFound, TwilioRejected
from app.twilio.statuses import (
    CANCELLED_STATUSES,
    COPY_STATUSES,
    EMPTY,
    FAILED_STATUSES,
    WAITING_STATUSES,
    normalise,
)

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

LOST_AFTER_NOT_FOUND = 3  # consecutive 404s (over several polls) before a job counts as gone from Twilio
MAX_RESYNCS = 3  # a sync repeats itself at most this often for webhooks that arrived while it ran
MAX_SYNC_DELAY = 900  # the poller looks at an unfinished job at least every 15 minutes


class ManifestRefused(Exception):
    """Writing the manifest failed in a way waiting will not fix (missing bucket, access denied)."""


class ManifestStore(Protocol):
    """Where a finished job's manifest goes (the workers' S3 sink implements it)."""

    def manifest_key(self, resource_type: str, job_sid: str) -> str: ...

    def put_json(self, key: str, obj: Any) -> None:
        """Raise ManifestRefused if retrying cannot help; any other error is retried by the caller."""
        ...


class JobOutcomes(Protocol):
    """Who learns how a final job's days ended (the feeds' coverage, ``app.feeds.coverage.CoverageKeeper``, wired
    in by ``app.services``: the jobs package knows no feeds)."""

    def job_settled(self, job: JobRecord, days: dict[str, DayRecord]) -> None:
        """``job`` became final with these day records (days of its range without one never started)."""
        ...


# -- planning (pure) ----------------------------------------------------------------------------------------


@dataclass
class SyncPlan:
    """What Twilio's answer means for each day of the job."""

    statuses: dict[str, str] = field(default_factory=dict)  # day -> lower-cased Twilio status
    failed_reasons: dict[str, str] = field(default_factory=dict)  # day -> why we count it as failed
    cancelled: bool = False

    @property
    def twilio_final(self) -> bool:
        return bool(self.statuses) and not any(s in WAITING_STATUSES for s in self.statuses.values())


def _counts_cover_every_day(details: list[DayDetail], n_days: int) -> bool:
    final = all(normalise(d.status) not in WAITING_STATUSES for d in details)
    return bool(details) and final and sum(d.count or 0 for d in details) >= n_days


def plan_days(job: JobRecord, details: list[DayDetail], files: set[str] | None) -> SyncPlan:
    """Map every day of the job's range to a status.

    Days Twilio lists outside the range are ignored. Days in the range that no entry lists are still running,
    unless some entries carry ``days: null``, or every entry is final and their counts cover the range; then
    ``files`` (the days Twilio holds files for, from ListDay) fills the gaps: a day with a file is Completed;
    one without is CompletedEmptyRecords when that is the only other final status, and Failed (requeue-able,
    never silently "empty") when Twilio also reports failures. ``files=None`` (ListDay refused or not asked):
    such days are Completed, so the copy task asks FetchDay, whose answer decides, never a guess.
    """
    all_days = job_days(job.start_day, job.end_day)
    in_range = set(all_days)
    plan = SyncPlan()
    unlisted: list[str] = []
    for d in details:
        status = normalise(d.status)
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
        _decide_from_files(plan, missing, {normalise(d.status) for d in details}, files)
    elif not unlisted:
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
        elif EMPTY in statuses:
            plan.statuses[day] = EMPTY
        else:
            plan.statuses[day] = "completed"


# -- syncing ------------------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    job_sid: str
    state: JobState
    queued_copies: int = 0
    ready_to_finish: bool = False  # every day is final: finish_if_done may close the job
    finished: bool = False  # this sync made the job final
    twilio_final: bool = False  # Twilio has said its last word on every day
    not_found: bool = False  # Twilio answered 404 for the job (counted towards LOST_AFTER_NOT_FOUND)


class JobNotTracked(LookupError):
    pass


def sync_job(svc: Services, store: ManifestStore, job_sid: str) -> SyncResult:
    """Ask Twilio for the job, record the day plan, queue copies, and finish the job once every day is final.

    A completion webhook that arrives while this job's sync is running is not queued (the sync's unique id is
    taken) but flags the job: if Twilio was not final when we looked, we look again at once rather than leave
    the job to the poller's backoff (up to 15 minutes).
    """
    job = _tracked(svc, job_sid)
    result = _sync_once(svc, job)
    for _ in range(MAX_RESYNCS):
        if result.twilio_final or result.state.final or result.not_found:
            break  # (a 404 again at once would count as a second miss within one sync: leave it to the poller)
        if not svc.jobs.take_resync_request(job_sid):
            break
        log.info("webhook arrived during the sync: syncing again", extra={"job_sid": job_sid})
        job = _tracked(svc, job_sid)  # a new look: what changed meanwhile (a cancel, the sync count) counts
        result = _sync_once(svc, job)
    if result.ready_to_finish:
        result.finished = finish_if_done(svc, store, job_sid, job)
    return result


def _tracked(svc: Services, job_sid: str) -> JobRecord:
    """The job's record, read once per sync and passed down (the sync keeps its copy up to date as it writes)."""
    job = svc.jobs.get_job(job_sid)
    if job is None:
        svc.jobs.deactivate(job_sid)
        raise JobNotTracked(f"sync: job {job_sid} is not tracked")
    return job


def fetched(tj: TwilioJob) -> dict[str, Any]:
    """What a job record keeps of Twilio's answer, with when it was read (``fetched_at``)."""
    return tj.snapshot() | {"fetched_at": iso(clock.now())}


def _sync_once(svc: Services, job: JobRecord) -> SyncResult:
    """One look at Twilio for ``job`` (its record as read by this task, kept up to date with what this sync
    writes)."""
    job_sid = job.job_sid
    if job.state.final:
        svc.jobs.deactivate(job_sid)
        return SyncResult(job_sid, job.state)
    svc.jobs.count_sync(job_sid)
    if job.origin == "listed":
        return _sync_listed(svc, job)
    try:
        tj = svc.twilio_for(job.account_sid).fetch_job(job_sid)
    except TwilioNotFound:
        return _twilio_lost_job(svc, job)
    except TwilioError as exc:
        note_outcome(svc.account_states, job.account_sid, exc)
        _sync_failed(svc, job, exc)
        raise  # RQ retries the sync a few times; the poller takes it up again after the backoff
    note_outcome(svc.account_states, job.account_sid, None)
    job.twilio, job.not_found, job.last_sync_error = fetched(tj), 0, ""
    svc.jobs.update_job(job_sid, twilio=job.twilio, not_found=0, last_sync_error="")
    needs_files = any(d.days is None for d in tj.details)
    files = day_files(svc, job.resource_type, job.account_sid) if needs_files or _has_copyable(tj) else {}
    plan = plan_days(job, tj.details, None if files is None else set(files))
    if plan.cancelled:
        finish(svc, job_sid, JobState.CANCELLED, error="deleted at Twilio")
        job.state = JobState.CANCELLED
        return SyncResult(job_sid, JobState.CANCELLED, finished=True)
    queued = _apply_plan(svc, job, plan, files or {})
    state = JobState.COPYING if plan.twilio_final else JobState.WAITING
    job.state = state
    all_final = plan.twilio_final and svc.days.all_days_final(job_sid, job_days(job.start_day, job.end_day))
    if not all_final:
        # The poller looks again later: Twilio still working, or copies in flight (in case one is lost).
        svc.jobs.schedule_sync(job_sid, clock.now() + _next_sync_delay(svc, job), state)
    return SyncResult(job_sid, state, queued, ready_to_finish=all_final, twilio_final=plan.twilio_final)


def _sync_listed(svc: Services, job: JobRecord) -> SyncResult:
    """A day file Twilio listed that no job here asked for (daily export, Console): there is no job at Twilio to
    ask, so ListDay decides (what it said when the day was found, if it is refused now)."""
    day = job.start_day
    files = day_files(svc, job.resource_type, job.account_sid)
    if files is None:
        listed = (job.twilio or {}).get("listed", {})
        files = {day: (listed.get("size"), listed.get("create_date"))}
    plan = SyncPlan(statuses={day: "completed"})
    if day not in files:
        plan.statuses[day] = "failed"
        plan.failed_reasons[day] = "Twilio no longer lists the file (deleted 7 days after it was made)"
    queued = _apply_plan(svc, job, plan, files)
    all_final = svc.days.all_days_final(job.job_sid, [day])
    if not all_final:
        svc.jobs.schedule_sync(job.job_sid, clock.now() + _next_sync_delay(svc, job), JobState.COPYING)
    return SyncResult(job.job_sid, JobState.COPYING, queued, ready_to_finish=all_final, twilio_final=True)


def _sync_failed(svc: Services, job: JobRecord, exc: TwilioError) -> None:
    """Make a failing sync visible (job status, metric, log) and keep the poller from retrying it every poll.

    An answer we cannot read (a new ``details`` shape, a 401/403 after a key change) would otherwise fail the
    sync forever with nothing on the job to show for it."""
    SYNC_FAILURES.labels(type(exc).__name__).inc()
    svc.jobs.update_job(job.job_sid, last_sync_error=str(exc)[:500])
    svc.jobs.schedule_sync(job.job_sid, clock.now() + _next_sync_delay(svc, job))
    log.warning("sync failed: %s", exc, extra={"job_sid": job.job_sid})


def _has_copyable(tj: TwilioJob) -> bool:
    return any(d.status.lower() in COPY_STATUSES for d in tj.details)


def day_files(svc: Services, resource_type: str, account_sid: str) -> dict[str, tuple[int | None, str | None]] | None:
    """day -> (size, create_date) for every file the account holds (one paged ListDay); None if refused."""
    try:
        listed = sorted(svc.twilio_for(account_sid).list_days(resource_type), key=lambda f: f.create_date or "")
        return {f.day: (f.size, f.create_date) for f in listed}  # a day listed twice: the newest export wins
    except TwilioRejected as exc:
        log.warning("ListDay refused (%s); copying without expected sizes", exc)
        return None


def _apply_plan(svc: Services, job: JobRecord, plan: SyncPlan, files: dict[str, tuple[int | None, str | None]]) -> int:
    svc.days.ensure_days(job.job_sid, [DayRecord(day=d) for d in plan.statuses])
    records = svc.days.get_days(job.job_sid)
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
            svc.days.put_day(job.job_sid, rec)
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
    misses = svc.jobs.count_not_found(job.job_sid)
    retention_over = clock.now() - job.created_at > TWILIO_RETENTION_S
    if misses < LOST_AFTER_NOT_FOUND and not retention_over:
        svc.jobs.schedule_sync(job.job_sid, clock.now() + _next_sync_delay(svc, job))
        return SyncResult(job.job_sid, job.state, not_found=True)
    records = svc.days.get_days(job.job_sid)
    for rec in records.values():
        if rec.state == DayState.PENDING:
            rec.state, rec.error = DayState.FAILED, "job no longer exists at Twilio"
            svc.days.put_day(job.job_sid, rec)
    if not records:
        finish(svc, job.job_sid, JobState.FAILED, error="job no longer exists at Twilio")
        return SyncResult(job.job_sid, JobState.FAILED, finished=True)
    if not all(r.state.final for r in svc.days.get_days(job.job_sid).values()):
        svc.jobs.schedule_sync(job.job_sid, clock.now() + _next_sync_delay(svc, job))
        return SyncResult(job.job_sid, JobState.COPYING)
    return SyncResult(job.job_sid, JobState.COPYING, ready_to_finish=True)


# -- finishing ----------------------------------------------------------------------------------------------


def finish(svc: Services, job_sid: str, state: JobState, **fields: Any) -> bool:
    """The one way a job becomes final (exactly once); counts and logs it, and settles its days' coverage (done
    days recorded, failed ones scheduled for a retry, unfinished ones missing again). False if it already was."""
    if not svc.jobs.finish_job(job_sid, state, **fields):
        return False
    job = svc.jobs.get_job(job_sid)  # the final record (its finalized_at, manifest and error), read once
    records = svc.days.get_days(job_sid)
    if job is not None:
        svc.job_outcomes.job_settled(job, records)
        events.job_finished(svc, job, records, state)  # job.done / job.failed: queued only, never raises
    JOBS.labels(state.value).inc()
    log.info("job %s", state.value, extra={"job_sid": job_sid, "manifest": fields.get("manifest_key", "")})
    return True


def finish_if_done(svc: Services, store: ManifestStore, job_sid: str, job: JobRecord | None = None) -> bool:
    """Write the manifest and mark the job final once Twilio is done and every day is final (exactly once);
    ``job``: its record if the caller has read it (its state is read again: a cancel or the last copy's own
    finish may have made the job final since, and a final job's manifest must not be rewritten)."""
    if job is not None and svc.jobs.job_states([job_sid]).get(job_sid) != job.state.value:
        job = None  # changed since the caller read it: read it again
    job = job or svc.jobs.get_job(job_sid)
    if job is None or job.state.final or not job.twilio:
        return False
    records = svc.days.get_days(job_sid)
    if not all(d in records and records[d].state.final for d in job_days(job.start_day, job.end_day)):
        return False  # every day of the range needs a final record, not just the ones seen so far
    days = day_views(records)
    failed = [d["day"] for d in days if d["state"] == DayState.FAILED]
    state = JobState.FAILED if failed else JobState.DONE
    key = store.manifest_key(job.resource_type, job_sid)
    manifest = {
        "job_sid": job_sid,
        "resource_type": job.resource_type,
        "account_sid": job.account_sid,
        "start_day": job.start_day,
        "end_day": job.end_day,
        "state": state.value,
        "finished_at": clock.utc_now().isoformat(timespec="seconds"),
        "days": days,
        "copied_days": sum(d["state"] == DayState.COPIED for d in days),
        "empty_days": [d["day"] for d in days if d["state"] == DayState.EMPTY],
        "failed_days": failed,
    }
    error = f"{len(failed)} day(s) failed" if failed else ""
    try:
        store.put_json(key, manifest)
    except ManifestRefused as exc:
        # Waiting will not help (missing bucket, access denied): make it visible; a requeue writes it later.
        state, key, error = JobState.FAILED, "", f"{error + '; ' if error else ''}manifest not written: {exc}"
    # Any other error propagates: the task is retried, or the poller's next sync finishes the job.
    finish(svc, job_sid, state, manifest_key=key, error=error)
    return True
