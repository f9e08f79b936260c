"""Days Twilio made without a custom job from here: its daily auto-export (ExportConfiguration, Twilio Editions)
and jobs made elsewhere (Console, other tools). They cost no quota: the relay copies them as they are listed.

Enabling the daily export registers our own webhook (``/hooks/bulkexport?token=...``, the token hashed at rest
and mapped to ``daily:{owner}``, same signature policy as job webhooks); its delivery only queues a *sweep*, and
the poller sweeps anyway (``SWEEP_INTERVAL_SECONDS``) because webhooks get lost. A sweep reads ListDay once and,
for every listed day inside a feed's window that the bucket lacks and no job covers, tracks a *listed* job of one
day (``origin: listed``, a local id ``JD…``) that is copied like any other, without asking Twilio for a job.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from app.feeds import coverage
from app.jobs import ops
from app.jobs.lifecycle import day_files
from app.jobs.ownership import webhook_url
from app.jobs.records import DayState, JobRecord, JobState, hash_token
from app.jobs.submission import TOKEN_BYTES
from app.platform import clock
from app.platform.errors import DomainError, NotFound
from app.platform.metrics import JOBS
from app.platform.validation import parse_day, validate_resource_type
from app.twilio.accounts import Account, owner_of
from app.twilio.client import TwilioRejected

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

DAILY_TARGET = "daily:"  # prefix of a webhook token's target for daily exports


class DailyExportRefused(DomainError):
    """Twilio refused the configuration (an account without Twilio Editions): nothing was changed."""

    status, title = 422, "refused by Twilio"


def show(svc: Services, resource_type: str, account: Account) -> dict[str, Any]:
    rt = validate_resource_type(resource_type)
    config = svc.twilio_for(account.sid).fetch_export_configuration(rt)
    local = svc.feeds.get_daily(owner_of(rt, account.sid))
    ours = bool(local.get("token_hash")) and config.webhook_url is not None and "token=" in config.webhook_url
    return {
        "resource_type": rt,
        "account_sid": account.sid,
        "enabled": config.enabled,
        "webhook": "relay" if ours else ("other" if config.webhook_url else None),
        "webhook_method": config.webhook_method,
    }


def set_enabled(svc: Services, resource_type: str, enabled: bool, account: Account) -> dict[str, Any]:
    """Turn Twilio's daily export on (with our webhook when PUBLIC_BASE_URL is set) or off."""
    rt = validate_resource_type(resource_type)
    owner = owner_of(rt, account.sid)
    old_hash = svc.feeds.get_daily(owner).get("token_hash") or None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    url = webhook_url(svc, token) if enabled else ""
    try:
        svc.twilio_for(account.sid).update_export_configuration(rt, enabled, url, svc.settings.webhook_method)
    except TwilioRejected as exc:
        raise DailyExportRefused(
            f"Twilio refused to {'enable' if enabled else 'disable'} the daily export of {rt}: {exc}. Daily exports "
            "need Twilio Editions on the account; the relay's feeds keep working with custom jobs."
        ) from exc
    if enabled and url:
        svc.tokens.set_token(hash_token(token), f"{DAILY_TARGET}{owner}", account.sid, replaces=old_hash)
    elif old_hash:
        svc.tokens.drop_token(old_hash)
    new_hash = hash_token(token) if enabled and url else ""
    svc.feeds.put_daily(owner, enabled="1" if enabled else "0", token_hash=new_hash)
    log.info("daily export %s", "enabled" if enabled else "disabled", extra={"resource_type": rt})
    return show(svc, rt, account)


def listed_job_sid(owner: str, day: str, create_date: str | None) -> str:
    """A local, deterministic id for one listed day file: the same file is never tracked twice."""
    digest = hashlib.sha256(f"{owner}|{day}|{create_date or ''}".encode()).hexdigest()[:32]
    return f"JD{digest}"


def sweep(svc: Services, resource_type: str, account_sid: str) -> list[str]:
    """Track every day Twilio lists inside an enabled feed's window that is neither stored nor covered."""
    owner = owner_of(resource_type, account_sid)
    feed = svc.feeds.get_feed(owner)
    svc.feeds.mark_run("sweep", owner, clock.now())
    if feed is None or not feed.enabled:
        return []
    files = day_files(svc, resource_type, account_sid) or {}
    window = set(coverage.feed_window(feed, svc.feeds.daily_enabled([owner])[owner]).days())
    cov = svc.feeds.coverage([owner])[owner]
    tracked = []
    for day in sorted(set(files) & window, reverse=True):
        # missing (or a retry waits), or its object is not the verified copy (app/bucket/check.py)
        if day not in cov or cov[day].state in ("retry", "corrupt"):
            tracked.append(_track_listed(svc, resource_type, account_sid, day, files[day]))
    return tracked


def copy_listed_day(svc: Services, resource_type: Any, day: Any, account: Account) -> JobRecord:
    """Copy one day Twilio lists, on request (``relay copy-day``, ``relay verify --repair``, the console's Retry),
    whether or not a feed covers it, and even if this very file was copied before."""
    rt = validate_resource_type(resource_type)
    day_text = parse_day(day, "day").isoformat()
    listed = (day_files(svc, rt, account.sid) or {}).get(day_text)
    if listed is None:
        raise NotFound(f"Twilio lists no {rt} file for {day_text} (files are kept 7 days after they are made)")
    sid = _track_listed(svc, rt, account.sid, day_text, listed)
    job = svc.jobs.get_job(sid)
    assert job is not None
    return job


def _track_listed(
    svc: Services, resource_type: str, account_sid: str, day: str, listed: tuple[int | None, str | None]
) -> str:
    """Track the listed file as a one-day job, or, if this very file was tracked and copied before, copy it once
    more: it is asked for only when the bucket lacks the day or holds it corrupt (or on request), and where the
    object is in fact there and intact, the copy's "already stored?" check makes that a HEAD, not a download."""
    size, create_date = listed
    owner = owner_of(resource_type, account_sid)
    sid = listed_job_sid(owner, day, create_date)
    record = JobRecord(
        job_sid=sid,
        resource_type=resource_type,
        start_day=day,
        end_day=day,
        friendly_name=f"listed by Twilio: {resource_type} {day}",
        origin="listed",
        account_sid=account_sid,
        twilio={"listed": {"size": size, "create_date": create_date}},
    )
    if svc.jobs.add_job(record):
        JOBS.labels("listed").inc()
        svc.feeds.mark_in_flight(owner, sid, [day])
        log.info("tracking a listed day file", extra={"job_sid": sid, "resource_type": resource_type, "day": day})
    elif _copied_in(svc, sid, day):
        ops.requeue(svc, sid, [day])
        svc.feeds.mark_in_flight(owner, sid, [day])  # a missing day (not a corrupt one): the planner leaves it
        log.info("copying a listed day file again", extra={"job_sid": sid, "resource_type": resource_type, "day": day})
        return sid
    svc.enqueuer.sync(sid)
    return sid


def _copied_in(svc: Services, job_sid: str, day: str) -> bool:
    """Whether the job copied the day (a copy in flight or failed there is not started again: the failure is
    visible, and the console's Retry requeues it; nor is a cancelled job's)."""
    job = svc.jobs.get_job(job_sid)
    rec = svc.days.get_day(job_sid, day)
    live = job is not None and job.state != JobState.CANCELLED
    return live and rec is not None and rec.state in (DayState.COPIED, DayState.EMPTY)
