"""RQ task functions (``*_task``, plus RQ's failure callback): thin entry points that build the process's services
once and call the domain core (``app.jobs.lifecycle``, ``app.jobs.submission``) or the day copier.

Referenced by dotted path from ``app/platform/queueing.py`` (the web never imports this module) and from
``workers/cron_config.py`` (the poller and janitor schedule).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from datetime import date, timedelta
from typing import Any

from rq import get_current_job
from rq.job import Job

from app.bucket import erase_day, migrate_layout, verify
from app.bucket import probe as store_probe
from app.bucket import reconcile as bucket_reconcile
from app.feeds import daily_exports, declared, planner, schedule
from app.feeds import summary as feed_summary
from app.jobs import events, lifecycle, recovery, submission
from app.jobs.retention import RETENTION_WARN_S, scan_active_days
from app.platform import clock
from app.platform.metrics import POLLS, RETENTION_WARNINGS
from app.platform.queueing import copy_timeout
from app.platform.units import MiB
from app.services import Services, worker_services
from workers.copy_errors import CopyBusy, CopyError, PermanentCopyError
from workers.day_copier import DayTask, copy_one_day, record_failure
from workers.sink import S3Sink, SinkSettings

log = logging.getLogger(__name__)

STALE_UPLOAD_AGE = timedelta(hours=24)
POLL_LOCK_SECONDS = 300


_probed: list[store_probe.WritePath] = []  # the store's write path once a probe (or its cache) gave it


def store_path() -> store_probe.WritePath:
    """The write path the store probe decided (``app.bucket.probe``: probed once across replicas, cached in Redis).
    Raises StoreRefused for a store that would corrupt what the relay writes. A probe that cannot run (S3 down, a
    missing bucket) is not fatal: until one runs, the path a store like AWS S3 gets under S3_OBJECT_TAGS (every
    write is still checked by a HeadObject), and the next call probes again. The janitor (``janitor_task``, hourly)
    takes the path again from the cache, probing when it has expired (6 h) or was lost with Redis: so the cache
    /health and /readyz read never runs out, and a store that changes behaviour is followed within hours."""
    if _probed:
        return _probed[0]
    svc = worker_services()
    s = svc.settings
    try:
        path = svc.probes.write_path(svc.s3_client(), s.s3_bucket, s.s3_prefix, s.s3_object_tags)
    except store_probe.StoreRefused:
        raise
    except Exception as exc:
        log.warning("S3 store probe did not run (%s: %s): probed again at the next task", type(exc).__name__, exc)
        return store_probe.decide(store_probe.AWS_LIKE, s.s3_object_tags, s.s3_bucket)
    _probed.append(path)
    return path


def sink() -> S3Sink:
    """The process's sink, on the store's write path (``store_path``)."""
    path = store_path()
    return _sink(path.digest_in_tags, path.multipart_etag_kept)


@functools.cache
def _sink(digest_in_tags: bool, multipart_etag_kept: bool) -> S3Sink:
    svc = worker_services()
    s = svc.settings
    settings = SinkSettings(
        bucket=s.s3_bucket,
        prefix=s.s3_prefix,
        sse=s.s3_sse,
        kms_key_id=s.s3_sse_kms_key_id,
        storage_class=s.s3_storage_class,
        single_put_max=s.s3_single_put_max_mib * MiB,
        digest_in_tags=digest_in_tags,
        multipart_etag_kept=multipart_etag_kept,
    )
    if s.s3_key_template:
        settings = dataclasses.replace(settings, key_template=s.s3_key_template)
    return S3Sink(svc.s3_client(), settings)


def _task_id() -> str:
    job = get_current_job()
    return job.id if job else "inline"


def sync_job_task(job_sid: str) -> dict[str, Any]:
    result = lifecycle.sync_job(worker_services(), sink(), job_sid)
    summary = {"state": result.state.value, "queued_copies": result.queued_copies, "finished": result.finished}
    log.info("synced", extra={"job_sid": job_sid, "task_id": _task_id(), **summary})
    return summary


def copy_day_task(job_sid: str, resource_type: str, day: str, size: int | None, create_date: str | None) -> str:
    svc = worker_services()
    task = DayTask(job_sid, resource_type, day, size, create_date, _task_id())
    max_attempts = len(svc.settings.copy_retry_intervals) + 1
    rec = copy_one_day(svc, sink(), task, lock_seconds=copy_timeout(size) + 60, max_attempts=max_attempts)
    lifecycle.finish_if_done(svc, sink(), job_sid)
    return rec.state.value if rec else "already-done"


def on_copy_failure(job: Job, connection: Any, exc_type: type, exc: BaseException, tb: Any) -> None:
    """RQ calls this after a failed attempt that raised (and for abandoned jobs); the last attempt fails the day.

    A permanent error (link gone, access denied, missing bucket) is not retried: RQ reads ``retries_left`` from
    this same job object after the callback. A worker killed outright (OOM) skips this callback: the
    attempts cap in ``day_copier.copy_one_day`` covers that path.
    """
    job_sid, _rt, day = job.args[0], job.args[1], job.args[2]
    if issubclass(exc_type, PermanentCopyError):
        job.retries_left = 0
    final = not job.retries_left
    svc = worker_services()
    record_failure(svc, job_sid, day, f"{exc_type.__name__}: {exc}", final, exc_type.__name__)
    if final:
        try:
            lifecycle.finish_if_done(svc, sink(), job_sid)
        except Exception:  # never replace the copy's own error; the poller's next sync finishes the job
            log.exception("could not finish the job after a failed day", extra={"job_sid": job_sid})


def lake_day_task(account_sid: str, resource_type: str, day: str, key: str, sha256: str, records: int) -> str:
    """Load a verified copy of a day into the lake (workers/lake_loader.py); RQ retries a failed attempt. Imported
    here, not at the top: the lake's libraries (pyiceberg, pyarrow) load only in a worker that has a lake task."""
    from workers.lake_loader import LakeDay, load_copied_day

    job = get_current_job()
    lake_day = LakeDay(account_sid, resource_type, day, key, sha256, records)
    return load_copied_day(worker_services(), sink(), lake_day, final=not (job and job.retries_left))


def sweep_task(owner: str) -> int:
    """Copy the day files Twilio lists for a feed that nobody submitted here (daily exports, Console jobs)."""
    account_sid, _, resource_type = owner.rpartition(":")
    tracked = daily_exports.sweep(worker_services(), resource_type, account_sid)
    log.info("swept Twilio's day list", extra={"resource_type": resource_type, "tracked": len(tracked)})
    return len(tracked)


def poll_task() -> dict[str, int]:
    """Re-sync every due non-final job (missed webhooks, adopted jobs, lost tasks); warn on retention."""
    svc = worker_services()
    owner = uuid.uuid4().hex  # per run: a poll must never "take back" another run's lock
    if not svc.locks.acquire("poll", owner, POLL_LOCK_SECONDS):
        POLLS.labels("skipped").inc()
        return {"queued": 0}
    try:
        _ensure_registry(svc)
        try:
            submission.reconcile_pending(svc)
        except Exception:  # Twilio down or an odd job list: the due jobs below must still be synced
            POLLS.labels("reconcile_failed").inc()
            log.exception("could not reconcile pending submissions; trying again next poll")
        queued = sum(svc.enqueuer.sync(sid) for sid in svc.jobs.due_jobs())
        _keep_feeds_complete(svc)
        _summarise_feeds(svc)
        feed_summary.feeds_lagging(svc)  # feed.lagging: once per feed and UTC day, never raises
        _retention_check(svc)
        svc.jobs.prune_jobs()
        svc.marks.mark_poll(clock.now())  # /health compares it with clock.now()
        POLLS.labels("ok").inc()
        return {"queued": queued}
    finally:
        svc.locks.release("poll", owner)  # only ours: a poll that overran must not free the next one's


def _ensure_registry(svc: Services) -> None:
    """A lost registry is rebuilt before anything else is planned (app/jobs/recovery.py)."""
    try:
        if recovery.ensure_registry(svc, sink()).state_before == recovery.LOST:
            POLLS.labels("registry_recovered").inc()
    except Exception:  # Twilio or S3 unavailable: the next poll tries again; /readyz keeps saying "lost"
        POLLS.labels("recovery_failed").inc()
        log.exception("could not check or rebuild the registry; trying again next poll")


def recover_task() -> dict[str, int]:
    """``relay recover``: track again every job of ours Twilio still lists (idempotent), marker included."""
    svc = worker_services()
    # A lost registry gets its marker (and the "signed webhook seen" fact) back before its jobs' tokens map again;
    # ensure_registry then has already listed Twilio's jobs: they are not listed twice.
    done = recovery.ensure_registry(svc, sink())
    adopted = done.adopted if done.state_before == recovery.LOST else recovery.recover_jobs(svc)
    log.info("recovery on request", extra={"adopted": len(adopted)})
    return {"adopted": len(adopted)}


def _keep_feeds_complete(svc: Services) -> None:
    """Continuous sync: SYNC_FEEDS applied, feeds due a reconciliation with the bucket or a sweep of Twilio's day
    list get a task, missing days are planned.

    A feed whose coverage was never reconciled (a fresh install, or a Redis that lost its data) is not planned
    until its reconcile task has run: planning it blind could export again days that are already in S3."""
    try:
        declared.apply_env_feeds(svc.feeds, svc.settings.sync, [a.sid for a in svc.accounts.all()])
        never_reconciled: set[str] = set()
        listed = svc.feeds.list_feeds()
        last = svc.feeds.last_runs(("reconcile", "sweep"), [f.owner for f in listed])  # one round trip for all
        s, now = svc.settings.sync, clock.now()
        for feed in listed:
            if schedule.due(last[("reconcile", feed.owner)], s.reconcile_hours * 3600, feed.owner, now):
                svc.enqueuer.reconcile(feed.owner)
            if last[("reconcile", feed.owner)] is None:
                never_reconciled.add(feed.owner)
            elif feed.enabled and schedule.due(last[("sweep", feed.owner)], s.sweep_seconds, feed.owner, now):
                svc.enqueuer.sweep(feed.owner)
        planner.plan(svc, svc.feeds, skip=frozenset(never_reconciled))
    except Exception:  # the jobs' own syncs (above) must not depend on the planner
        POLLS.labels("plan_failed").inc()
        log.exception("continuous sync planning failed; trying again next poll")


def _summarise_feeds(svc: Services) -> None:
    """What /health, /metrics and feed.lagging report about feeds, computed here once per poll so that no web request
    computes coverage (app/feeds/summary.py)."""
    try:
        feed_summary.refresh(svc)
    except Exception:  # the previous summaries stay; the next poll tries again
        POLLS.labels("summary_failed").inc()
        log.exception("could not summarise the feeds; /health and /metrics keep the previous summary")


def reconcile_task(owner: str) -> int:
    """Reconcile one feed's coverage with the bucket; -1 when S3 could not be listed (the next poll asks again:
    nothing is marked done). Days found corrupt get a sweep at once: it copies them again while Twilio still
    lists their files (app/bucket/check.py)."""
    account_sid, _, resource_type = owner.rpartition(":")
    extra = {"resource_type": resource_type, "account_sid": account_sid}
    svc = worker_services()
    try:
        result = bucket_reconcile.reconcile(
            svc.feeds, sink(), resource_type, account_sid, svc.settings.sync.refetch_vanished
        )
    except CopyError as exc:  # S3 unavailable or refusing
        log.warning("could not reconcile coverage with the bucket: %s", exc, extra=extra)
        return -1
    if result.corrupt:
        svc.enqueuer.sweep(owner)
    log.info("coverage reconciled with the bucket", extra=extra | result._asdict())
    return result.found + result.lost + result.corrupt


def erase_day_task(owner: str, day: str) -> dict[str, Any]:
    """A deleted day's objects removed from S3 and checked gone (app/bucket/erase_day.py), under the day's copy
    lock: a copy of the day running now finishes first (and then finds the tombstone: workers/day_copier.py), so no
    write lands after the erase checked the objects gone. Busy: RQ retries (Enqueuer.erase_day)."""
    svc, owner_id = worker_services(), str(uuid.uuid4())
    account_sid, _, resource_type = owner.rpartition(":")
    scope = f"{account_sid}:{resource_type}"
    if not svc.locks.acquire_copy_lock(scope, day, owner_id, 300):
        raise CopyBusy(f"{resource_type}/{day} is being copied: the erase waits for it")
    try:
        return erase_day.erase_day(svc.feeds, sink(), owner, day)
    finally:
        svc.locks.release_copy_lock(scope, day, owner_id)


def verify_task(
    resource_type: str | None, account_sid: str | None, first: str | None, last: str | None, repair: bool
) -> dict[str, Any]:
    """``relay verify``: re-read the selected feeds' copied days (app/bucket/verify.py); the report is the result."""
    which = verify.Selection(
        resource_type,
        account_sid,
        date.fromisoformat(first) if first else None,
        date.fromisoformat(last) if last else None,
    )
    doc = verify.summary(verify.verify(worker_services(), sink(), which, repair=repair))
    log.info("verified the bucket", extra={"resource_type": resource_type, "counts": doc["counts"]})
    return doc


def migrate_layout_task(template: str, account_sid: str | None, delete_old: bool) -> dict[str, Any]:
    """``relay migrate-layout``: copy every copied day to the template's keys (app/bucket/migrate_layout.py); the report
    is the result."""
    svc = worker_services()
    migrate_layout.validate_template(svc, template)
    doc = migrate_layout.summary(migrate_layout.migrate(svc, sink(), template, account_sid, delete_old))
    log.info("migrated the key layout", extra={"counts": doc["counts"], "deleted_old": doc["deleted_old"]})
    return doc


def _retention_check(svc: Services) -> None:
    """Warn when a completed day is still not copied and Twilio will delete its file soon."""
    at_risk = [day for day in scan_active_days(svc.jobs, svc.days).uncopied if day.age_seconds > RETENTION_WARN_S]
    events.retention_at_risk(svc, at_risk)  # retention.at_risk: once per job and UTC day, never raises
    for day in at_risk:
        RETENTION_WARNINGS.inc()
        log.warning(
            "day not copied %.1f days after Twilio made its file; Twilio deletes files after 7",
            day.age_seconds / 86400,
            extra={"job_sid": day.job_sid, "day": day.day, "state": day.state.value},
        )


def deliver_event_task(event_id: str, body: str) -> int:
    """POST one outbound event (app/jobs/events.py); a failed attempt raises and RQ retries it, same id and body."""
    job = get_current_job()
    return events.deliver(worker_services().settings, event_id, body, final=not (job and job.retries_left))


def janitor_task() -> int:
    """Take the store's write path again (``store_path``), then abort multipart uploads and staging objects left
    by killed workers; with a lake, expire its old snapshots and remove the data files nothing references."""
    _probed.clear()
    count = sink().abort_stale_uploads(STALE_UPLOAD_AGE)
    log.info("janitor removed %d stale upload(s)", count)
    lake = worker_services().settings.lake
    if lake is not None:
        from workers.lake_loader import maintain

        try:
            log.info("janitor maintained the lake", extra=maintain(lake))
        except Exception:  # the catalog or S3 away: the next run tries again; the uploads above are done
            log.exception("could not maintain the lake; trying again at the next janitor run")
    return count
