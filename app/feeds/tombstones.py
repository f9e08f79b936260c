"""Days deleted on purpose stay deleted: a tombstone in coverage (state ``deleted``: who, when, why).

``DELETE /api/days/<rt>/<day>``, ``relay delete-day`` and the console's Delete button record the tombstone at
once (coverage says ``deleted``) and queue a worker task that deletes the day's objects and checks they are gone
(``app.bucket.erase_day``: the web's IAM role may not delete objects). The planner and the daily-export sweep skip
every recorded day that is not waiting for a retry, and the reconcile neither finds a tombstoned day again nor
forgets it, so an owner's deletion (a retention policy, a GDPR request) is never undone by the relay spending
quota on it. ``restore`` (``POST /api/days/<rt>/<day>/restore``) or a copy on request lifts the tombstone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from app.feeds import daily_exports
from app.feeds.store import KEPT_GONE_STATES, CoverageDay
from app.platform.errors import Conflict, NotFound, RequestError
from app.platform.validation import parse_day, validate_resource_type
from app.twilio.accounts import owner_of

if TYPE_CHECKING:
    from app.jobs.records import JobRecord
    from app.services import Services
    from app.twilio.accounts import Account

log = logging.getLogger(__name__)

ASKERS = ("api", "cli", "console")
MAX_REASON = 500


def delete_day(svc: Services, resource_type: Any, day: Any, account: Account, who: str, reason: Any) -> dict[str, Any]:
    """Record the tombstone and queue the objects' deletion; a day a job is copying now is refused (409): its
    copy would land after the deletion."""
    rt, day_text = validate_resource_type(resource_type), parse_day(day, "day").isoformat()
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise RequestError(f"reason must be text of at most {MAX_REASON} characters")
    owner = owner_of(rt, account.sid)
    previous = svc.feeds.get_day(owner, day_text)
    if previous is not None and previous.state == "in_flight":
        raise Conflict(f"{rt} {day_text} is being copied by job {previous.job_sid}: wait for it, then delete")
    tomb = CoverageDay(
        "deleted",
        previous.job_sid if previous else None,
        previous.key if previous else None,
        deleted_by=who,
        reason=reason or None,
    )
    if previous is None:
        svc.feeds.put_days(owner, {day_text: tomb})
    elif not svc.feeds.replace_days(owner, {day_text: (previous, tomb)}):  # e.g. a job took it in flight since
        raise Conflict(f"{rt} {day_text} changed meanwhile: ask again")
    svc.enqueuer.erase_day(owner, day_text)
    log.warning(
        "day deleted on request: %s %s",
        rt,
        day_text,
        extra={"resource_type": rt, "account_sid": account.sid, "day": day_text, "by": who, "reason": reason},
    )
    return day_view(rt, account.sid, day_text, tomb)


def restore_day(svc: Services, resource_type: Any, day: Any, account: Account) -> dict[str, Any]:
    """Lift a tombstone (or a ``vanished`` mark): the day is missing again, so the planner fetches it inside the
    feed's window. 404 when the day has neither."""
    rt, day_text = validate_resource_type(resource_type), parse_day(day, "day").isoformat()
    owner = owner_of(rt, account.sid)
    rec = svc.feeds.get_day(owner, day_text)
    if rec is None or rec.state not in KEPT_GONE_STATES:
        raise NotFound(f"{rt} {day_text} is not deleted")
    if not svc.feeds.replace_days(owner, {day_text: (rec, None)}):
        raise Conflict(f"{rt} {day_text} changed meanwhile: ask again")
    log.info("day restored: %s %s", rt, day_text, extra={"resource_type": rt, "account_sid": account.sid})
    return {"resource_type": rt, "account": account.sid, "day": day_text, "state": "missing"}


def copy_day(svc: Services, resource_type: Any, day: Any, account: Account) -> JobRecord:
    """``POST /api/days/<rt>/<day>/copy``: a copy on request lifts the day's tombstone first (so the copy's job
    tracks the day), and puts it back if the copy could not start (Twilio lists no file)."""
    rt, day_text = validate_resource_type(resource_type), parse_day(day, "day").isoformat()
    owner = owner_of(rt, account.sid)
    read = svc.feeds.get_day(owner, day_text)
    tomb = read if read is not None and read.state in KEPT_GONE_STATES else None
    if tomb is not None:
        svc.feeds.replace_days(owner, {day_text: (tomb, None)})
    try:
        return daily_exports.copy_listed_day(svc, rt, day_text, account)
    except Exception:
        if tomb is not None and svc.feeds.get_day(owner, day_text) is None:
            svc.feeds.put_days(owner, {day_text: tomb})
        raise


def day_view(resource_type: str, account_sid: str, day: str, rec: CoverageDay) -> dict[str, Any]:
    return {
        "resource_type": resource_type,
        "account": account_sid,
        "day": day,
        "state": rec.state,
        "deleted_by": rec.deleted_by,
        "deleted_at": rec.updated_at,
        "reason": rec.reason,
        "key": rec.key,
        "erased": bool(rec.erased),
    }
