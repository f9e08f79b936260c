"""Submitting export jobs to Twilio: validate the request, reserve today's quota, create one job per <=366 days.

Every job gets its own unguessable webhook token (only its SHA-256 is stored). The token is recorded as *pending*
before Twilio is called, so an early webhook is recognised and an ambiguous create (no answer) can be adopted
later by the poller (``reconcile_pending``) instead of leaving an untracked job at Twilio.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from app.jobs.ownership import hook_prefix, mark_of, origin_of, record_of, token_ref, webhook_url
from app.jobs.records import JobRecord, hash_token
from app.platform import clock
from app.platform.config import RESOURCE_TYPES
from app.platform.days import days_between, newest_exportable_day, split_range
from app.platform.errors import RequestError, SubmitUncertain
from app.platform.metrics import JOBS
from app.platform.validation import parse_day, validate_resource_type
from app.twilio.accounts import owner_of
from app.twilio.client import BulkExportsClient, TwilioError, TwilioJob, TwilioNotFound, TwilioUnavailable

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

TOKEN_BYTES = 32  # 256 bits in every webhook URL
PENDING_ADOPT_AFTER_S = 60.0  # a pending submission older than this is looked for at Twilio by its token


@dataclass(frozen=True)
class SubmitRequest:
    resource_type: str
    start_day: date
    end_day: date
    friendly_name: str
    email: str | None
    account: str | None = None  # SID or label as given; resolved by submit() (None: the only account)

    @classmethod
    def from_body(cls, body: Any, today: date | None = None) -> SubmitRequest:
        if not isinstance(body, dict):
            raise RequestError("body must be a JSON object")
        unknown = set(body) - {"resource_type", "start_day", "end_day", "friendly_name", "email", "account"}
        if unknown:
            raise RequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
        rt = validate_resource_type(body.get("resource_type"))
        start = parse_day(body.get("start_day"), "start_day")
        end = parse_day(body.get("end_day"), "end_day")
        if start > end:
            raise RequestError("start_day must not be after end_day")
        latest = newest_exportable_day(today)
        if end > latest:
            raise RequestError(f"end_day must be at most {latest.isoformat()} (two days before today, UTC)")
        name = body.get("friendly_name")
        if name is not None and (not isinstance(name, str) or len(name) > 200):
            raise RequestError("friendly_name must be a string of at most 200 characters")
        name = name or f"bulkexport-relay {rt} {start}..{end}"
        email = body.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email or len(email) > 254):
            raise RequestError("email must be an e-mail address")
        account = body.get("account")
        if account is not None and not isinstance(account, str):
            raise RequestError("account must be an account SID or label")
        return cls(rt, start, end, name, email, account)


@dataclass
class SubmitResult:
    jobs: list[JobRecord]
    error: Exception | None = None  # set when a later chunk failed after earlier ones were created


def submit(svc: Services, req: SubmitRequest, quota_limit: int | None = None, origin: str = "api") -> SubmitResult:
    """Create one Twilio job per ≤366-day chunk, after reserving today's quota for all of them (``quota_limit``:
    a lower ceiling for this caller, see QuotaStore.reserve)."""
    chunks = split_range(req.start_day, req.end_day)
    total_days = (req.end_day - req.start_day).days + 1
    quota = svc.settings.daily_day_quota
    if total_days > quota:
        # Waiting for tomorrow would not help (a 429 would make clients retry forever): say what to do instead.
        raise RequestError(
            f"{total_days} days exceed Twilio's {quota} requested days per UTC day: submit at most {quota} days "
            "per request, one request per UTC day"
        )
    account = svc.accounts.resolve(req.account)
    req = replace(req, account=account.sid)
    today = clock.utc_today().isoformat()
    svc.quota.reserve(today, total_days, quota_limit, account.family)  # raises QuotaExceeded
    created: list[JobRecord] = []
    for index, (start, end) in enumerate(chunks):
        name = req.friendly_name if len(chunks) == 1 else f"{req.friendly_name} ({index + 1}/{len(chunks)})"
        try:
            created.append(_submit_chunk(svc, req, start, end, name, origin))
        except (TwilioError, SubmitUncertain, RedisError) as exc:
            # A chunk that may exist at Twilio keeps its share of the quota (Twilio may have counted it).
            maybe_created = index + 1 if isinstance(exc, SubmitUncertain) else index
            left = sum((e - s).days + 1 for s, e in chunks[maybe_created:])
            _release_quota(svc, today, left, account.family)
            if not created:
                raise
            return SubmitResult(created, exc)
    return SubmitResult(created)


def _release_quota(svc: Services, today: str, days: int, family: str) -> None:
    try:
        svc.quota.release(today, days, family)
    except RedisError:  # the quota then errs on the safe side (too little left today), never the other way
        log.warning("could not give back %d days of today's quota (Redis unavailable)", days)


def _submit_chunk(svc: Services, req: SubmitRequest, start: date, end: date, name: str, origin: str) -> JobRecord:
    """Pending record and in-flight marks first (keyed by the token), then Twilio, then the job record: a crash
    between any two steps leaves something the poller can finish (``reconcile_pending``, ``planner.heal``)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    token_hash = hash_token(token)
    days = days_between(start, end)
    account_sid = req.account or svc.accounts.primary.sid
    owner = owner_of(req.resource_type, account_sid)
    svc.tokens.add_pending(
        token_hash,
        {
            "resource_type": req.resource_type,
            "start_day": start.isoformat(),
            "end_day": end.isoformat(),
            "account_sid": account_sid,
            "origin": origin,
        },
    )
    svc.feeds.mark_in_flight(owner, f"pending:{token_hash}", days)
    try:
        tj = _create_at_twilio(svc, req, start, end, name, token, token_hash)
    except SubmitUncertain:
        raise  # pending and marks stay: the poller adopts the job by its token, or frees the days
    except TwilioError:
        svc.tokens.drop_pending(token_hash)  # Twilio created nothing: the days are free again
        svc.feeds.release_days(owner, f"pending:{token_hash}", days)
        raise
    sent = (start.isoformat(), end.isoformat(), name)
    record = record_of(tj, req.resource_type, account_sid, origin, token_hash, sent, req.email or "")
    try:
        svc.jobs.add_job(record)
        svc.feeds.mark_in_flight(owner, tj.job_sid, days)
    except RedisError as exc:
        raise SubmitUncertain(
            f"Twilio created job {tj.job_sid} but it could not be recorded ({exc}); the poller starts tracking it "
            "once storage is back. Do not submit it again."
        ) from exc
    JOBS.labels("submitted").inc()
    log.info("submitted job", extra={"job_sid": tj.job_sid, "resource_type": req.resource_type, "origin": origin})
    return record


def _create_at_twilio(
    svc: Services, req: SubmitRequest, start: date, end: date, name: str, token: str, token_hash: str
) -> TwilioJob:
    """The create call, its failures sorted: SubmitUncertain when the job may exist, TwilioError when it does not."""
    url = webhook_url(svc, token)
    client = svc.twilio_for(req.account or "")
    try:
        return client.create_job(
            req.resource_type,
            start.isoformat(),
            end.isoformat(),
            name if url else f"{name} {token_ref(token_hash)}",
            url,
            svc.settings.webhook_method,
            req.email,
        )
    except TwilioUnavailable as exc:
        if exc.status == 429:
            raise  # Twilio never processed it
        found = _created_despite(svc, client, req.resource_type, token_hash)
        if found is not None:
            log.warning("create answered %s but the job exists: %s", exc.status, found.job_sid)
            return found
        # Ambiguous (5xx or no answer after sending): the job may exist. The pending record stays so the
        # poller can find it by its token (reconcile_pending) instead of leaving an untracked job at Twilio.
        raise SubmitUncertain(
            f"Twilio's answer to creating the {req.resource_type} job for {start}..{end} was lost ({exc}); the job "
            "may exist: if it does, the poller starts tracking it within minutes. Check the job list before "
            "submitting again."
        ) from exc
    except TwilioNotFound as exc:
        # Not "no such job" for the caller: the create endpoint itself is missing (wrong base URL, API change).
        raise TwilioError(f"Twilio answered 404 to creating a job ({exc})", exc.status, exc.code) from exc


def _created_despite(svc: Services, client: BulkExportsClient, resource_type: str, token_hash: str) -> TwilioJob | None:
    """The job a create whose answer was lost made after all, found by its mark; None if none (or unlisted)."""
    prefix = hook_prefix(svc)
    try:
        for tj in client.list_jobs(resource_type):
            mark = mark_of(tj, prefix)
            if mark is not None and mark.is_of(token_hash):
                return tj
    except TwilioError:
        return None
    return None


def reconcile_pending(svc: Services, older_than: float = PENDING_ADOPT_AFTER_S) -> list[str]:
    """Adopt jobs whose create call failed ambiguously but that Twilio did create (found by our token)."""
    adopted: list[str] = []
    now = clock.now()  # the token store stamps pending submissions with the relay's clock too
    pending = {
        h: req
        for h, req in svc.tokens.pending_submissions().items()
        if now - float(req.get("created_at", now)) > older_than and req.get("resource_type") in RESOURCE_TYPES
    }
    default = svc.accounts.primary.sid
    prefix = hook_prefix(svc)
    for account_sid, rt in sorted({(r.get("account_sid") or default, r["resource_type"]) for r in pending.values()}):
        for tj in svc.twilio_for(account_sid).list_jobs(rt):
            mark = mark_of(tj, prefix)
            token_hash = next((h for h in pending if mark.is_of(h)), None) if mark else None
            if token_hash is None or svc.jobs.get_job(tj.job_sid) is not None:
                continue
            req = pending[token_hash]
            origin = req.get("origin") or origin_of(tj.friendly_name or "")  # older pending records lack it
            sent = (req["start_day"], req["end_day"], tj.friendly_name or "")
            svc.jobs.add_job(record_of(tj, rt, account_sid, origin, token_hash, sent))
            log.warning("recovered a job created despite an error answer", extra={"job_sid": tj.job_sid})
            adopted.append(tj.job_sid)
    return adopted
