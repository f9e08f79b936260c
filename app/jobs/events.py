"""Outbound events: what happened, POSTed to ``NOTIFY_URL`` and signed per the Standard Webhooks specification.

Types: ``job.done``, ``job.failed``, ``day.failed``, ``feed.lagging``, ``retention.at_risk``,
``registry.recovered``. The body is ``{"type", "timestamp", "data"}`` (the spec's shape); the headers
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>``) are made with the
``standardwebhooks`` package from ``NOTIFY_SECRET`` (``whsec_<base64>``), so receivers verify with any
Standard Webhooks library.

- **One id per event, decided here**: ``evt_`` + sha256(type, subject, occurrence). The occurrence is what makes
  a re-occurrence a new event (none for ``job.done``: a job is done once; the moment a job failed or a day
  failed; the UTC date for the daily ``feed.lagging`` / ``retention.at_risk``), so computing the same event twice
  gives the same id, and every retry of a delivery carries it: receivers deduplicate on ``webhook-id``.
- **Emitted once**: a Redis claim per id (``LockStore.claim_event``) keeps the poller from announcing a lagging
  feed or an at-risk job on every poll; then one RQ task per event (``Enqueuer.event``) delivers it, retried
  with ``NOTIFY_RETRY_INTERVALS``.
- **Never in the way**: emitting only claims and enqueues (no HTTP), and any error is logged and counted
  (``relay_events_total{outcome="emit_failed"}``), never raised into the copy, sync or poll that emitted it.
- **Only to NOTIFY_URL**: the delivery does not follow redirects (a 3xx is a failed attempt) and ignores proxy
  and netrc settings from the environment. The secret is never logged.

Events are sent from processes that have both ``NOTIFY_URL`` and ``NOTIFY_SECRET`` (the workers, which run every
sync, copy and poll); elsewhere the functions below do nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec

import requests
from standardwebhooks import Webhook

from app.jobs.records import DayRecord, DayState, JobRecord, JobState
from app.jobs.retention import TWILIO_RETENTION_S, UncopiedDay
from app.platform import clock
from app.platform.config import Settings
from app.platform.logs import scrub
from app.platform.metrics import EVENTS

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

EVENT_TYPES = ("job.done", "job.failed", "day.failed", "feed.lagging", "retention.at_risk", "registry.recovered")
CLAIM_TTL_SECONDS = 8 * 86400  # an event is emitted once within this (longer than Twilio's 7 days)
TIMEOUT = (5, 10)  # connect, read: a slow receiver costs one control-queue task slot, never a copy
MAX_LISTED = 100  # job sids / days listed in one payload at most (the counts are always complete)
P = ParamSpec("P")


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx: RQ retries the task (same id, same body, a fresh signature)."""


def enabled(settings: Settings) -> bool:
    return bool(settings.notify.url and settings.notify.secret)


def event_id(event_type: str, subject: str, occurrence: str) -> str:
    """Deterministic: the same event computed twice (or retried) has the same id."""
    digest = hashlib.sha256(f"{event_type}\n{subject}\n{occurrence}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def body(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The signed payload, serialised once at emission: every retry sends these very bytes."""
    stamp = at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps({"type": event_type, "timestamp": stamp, "data": data}, sort_keys=True, separators=(",", ":"))


def emit(svc: Services, event_type: str, subject: str, occurrence: str, data: dict[str, Any]) -> str | None:
    """Claim the event and queue its delivery; the id, or None when it was already emitted (or failed)."""
    assert event_type in EVENT_TYPES, event_type
    eid = event_id(event_type, subject, occurrence)
    if not svc.locks.claim_event(eid, CLAIM_TTL_SECONDS):
        return None
    try:
        svc.enqueuer.event(eid, body(event_type, data, clock.utc_now()), svc.settings.notify.retry_intervals)
    except Exception:
        svc.locks.release_event(eid)  # not queued: a later emission of the same event may try again
        raise
    EVENTS.labels(event_type, "queued").inc()
    log.info("event queued", extra={"event_type": event_type, "event_id": eid, "subject": subject})
    return eid


def best_effort(event_type: str) -> Callable[[Callable[P, None]], Callable[P, None]]:
    """Run an emitter only where events are configured, and never let it raise into the caller's work."""

    def wrap(func: Callable[P, None]) -> Callable[P, None]:
        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> None:
            svc: Any = args[0]  # every emitter's first argument is the Services
            if not enabled(svc.settings):
                return
            try:
                func(*args, **kwargs)
            except Exception:
                EVENTS.labels(event_type, "emit_failed").inc()
                log.exception("event not emitted", extra={"event_type": event_type})

        return run

    return wrap


# -- the events -----------------------------------------------------------------------------------------------


@best_effort("job")
def job_finished(svc: Services, job: JobRecord, records: dict[str, DayRecord], state: JobState) -> None:
    """``job.done`` / ``job.failed`` from ``app.jobs.lifecycle.finish``, with the job's final record and its days
    (a cancelled job is not announced)."""
    if state not in (JobState.DONE, JobState.FAILED):
        return
    job_sid = job.job_sid
    days = records.values()
    failed = sorted(d.day for d in days if d.state == DayState.FAILED)
    data = {
        "job_sid": job_sid,
        "account_sid": _account(svc, job),
        "resource_type": job.resource_type,
        "start_day": job.start_day,
        "end_day": job.end_day,
        "state": state.value,
        "origin": job.origin,
        "manifest_key": job.manifest_key,
        "error": scrub(job.error, svc.settings.secrets),
        "copied_days": sum(d.state == DayState.COPIED for d in days),
        "empty_days": sum(d.state == DayState.EMPTY for d in days),
        "failed_days": failed[:MAX_LISTED],
        "failed_count": len(failed),
        "finished_at": _iso(job.finalized_at or clock.now()),
    }
    # A job is done once (done again after a requeue or a registry rebuild: the same fact, the same id); each
    # failure is news (a requeue that fails again must be announced again).
    occurrence = "" if state == JobState.DONE else repr(job.finalized_at)
    emit(svc, f"job.{state.value}", job_sid, occurrence, data)


@best_effort("day.failed")
def day_failed(svc: Services, job_sid: str, rec: DayRecord) -> None:
    """A day's last copy attempt failed (``workers.day_copier.record_failure``); requeue-able."""
    job = svc.jobs.get_job(job_sid)
    data = {
        "job_sid": job_sid,
        "account_sid": _account(svc, job),
        "resource_type": job.resource_type if job else None,
        "day": rec.day,
        "attempts": rec.attempts,
        "error": scrub(rec.error or "", svc.settings.secrets),
        "failed_at": _iso(rec.updated_at),
    }
    emit(svc, "day.failed", f"{job_sid}/{rec.day}", repr(rec.updated_at), data)


@best_effort("registry.recovered")
def registry_recovered(svc: Services, adopted: list[str]) -> None:
    """Redis had lost the registry and the poller rebuilt it (``app.jobs.recovery.ensure_registry``)."""
    marker = svc.marks.marker()
    data = {
        "registry_id": marker.get("id", ""),
        "recovered_at": _iso(float(marker.get("recovered_at") or clock.now())),
        "adopted_jobs": len(adopted),
        "job_sids": sorted(adopted)[:MAX_LISTED],
    }
    emit(svc, "registry.recovered", marker.get("id", ""), marker.get("recovered_at", ""), data)


@best_effort("retention.at_risk")
def retention_at_risk(svc: Services, days: Iterable[UncopiedDay]) -> None:
    """Days done at Twilio, still not copied 5 days after Twilio made them: one event per job and UTC date."""
    by_job: dict[str, list[UncopiedDay]] = {}
    for d in days:
        by_job.setdefault(d.job_sid, []).append(d)
    today = clock.utc_today().isoformat()
    now = clock.now()
    for sid, at_risk in sorted(by_job.items()):
        job = svc.jobs.get_job(sid)
        listed = sorted(at_risk, key=lambda d: d.day)[:MAX_LISTED]
        data = {
            "job_sid": sid,
            "account_sid": _account(svc, job),
            "resource_type": job.resource_type if job else None,
            "day_count": len(at_risk),
            "days": [_at_risk_view(d, now) for d in listed],
        }
        emit(svc, "retention.at_risk", sid, today, data)


def _at_risk_view(d: UncopiedDay, now: float) -> dict[str, Any]:
    return {
        "day": d.day,
        "state": d.state.value,
        "age_seconds": round(d.age_seconds),
        "deleted_at": _iso(now - d.age_seconds + TWILIO_RETENTION_S),
    }


def _account(svc: Services, job: JobRecord | None) -> str | None:
    """The job's Twilio account (records of single-account versions carry none: TWILIO_ACCOUNT_SID's)."""
    return None if job is None else job.account_sid or svc.settings.twilio_account_sid


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# -- delivery (the RQ task in workers/tasks.py) ---------------------------------------------------------------


@functools.cache
def _session() -> requests.Session:
    """No proxies, netrc or CA settings from the environment: the POST goes to NOTIFY_URL and nowhere else."""
    session = requests.Session()
    session.trust_env = False
    return session


def deliver(settings: Settings, eid: str, payload: str, final: bool) -> int:
    """POST one event, signed now (receivers refuse timestamps over ~5 minutes old, so each attempt signs afresh
    with the same id and body). Returns the HTTP status; raises DeliveryFailed for RQ to retry."""
    event_type = str(json.loads(payload).get("type", "unknown"))
    if not enabled(settings):
        EVENTS.labels(event_type, "not_configured").inc()
        log.error("event not delivered: NOTIFY_URL and NOTIFY_SECRET must both be set", extra={"event_id": eid})
        return 0
    assert settings.notify.url and settings.notify.secret
    now = clock.system_utc_now()  # receivers check the signature's age against their own clock
    headers = {
        "content-type": "application/json",
        "user-agent": "bulkexport-relay",
        "webhook-id": eid,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(settings.notify.secret).sign(eid, now, payload),
    }
    outcome, status = "delivered", 0
    try:
        response = _session().post(
            settings.notify.url, data=payload.encode(), headers=headers, timeout=TIMEOUT, allow_redirects=False
        )
        status = response.status_code
        response.close()
        if not 200 <= status < 300:
            outcome = "failed" if final else "attempt_failed"
    except requests.RequestException as exc:
        outcome, status = ("failed" if final else "attempt_failed"), 0
        log.warning("event delivery error: %s", type(exc).__name__, extra={"event_id": eid})
    EVENTS.labels(event_type, outcome).inc()
    extra = {"event_id": eid, "event_type": event_type, "status": status, "final": final}
    if outcome != "delivered":
        log.warning("event delivery failed", extra=extra)
        raise DeliveryFailed(f"receiver answered {status or 'nothing'}")
    log.info("event delivered", extra=extra)
    return status
