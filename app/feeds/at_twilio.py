"""Twilio's own lists, read live: every ExportCustomJob Twilio has for a resource type (ReadExportCustomJob), each
marked tracked here or not, and every day file Twilio holds (ListDay), each with what the bucket holds of its day.

A job created elsewhere (Twilio's Console, another tool, a colleague's script) is visible here before anyone runs
``track``; a day file is visible before anyone asks for it, with whether copying it would add anything.

Both lists are read whole from Twilio on every request (``BulkExportsClient.list_jobs``/``list_days``: paged by
twilio-python, next pages only on the configured host) and then paged here with the API's ``page``/``page_size``:
Twilio keeps a job and a day file 7 days, so a list is a few pages of Twilio's (1000 jobs or 400 days a page) and
a total can be given. Nothing is stored. What the bucket holds is read from the coverage the relay keeps per
account and resource type (``FeedStore.day_states``: one Redis round trip, no S3 request per day); coverage
follows every job's days as they are copied, and the reconcile makes it agree with the bucket for feeds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.feeds.coverage import reported_state
from app.jobs.documents import utc_text
from app.platform.validation import validate_resource_type
from app.twilio.accounts import Account, owner_of
from app.twilio.client import DayFile, TwilioJob

if TYPE_CHECKING:
    from app.services import Services

MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000


def paged(items: list[Any], page: int, page_size: int) -> tuple[list[Any], dict[str, Any]]:
    """One page of a list read whole, and the API's ``meta`` for it."""
    total = len(items)
    start = page * page_size
    meta = {"page": page, "page_size": page_size, "total": total, "has_more": start + page_size < total}
    return items[start : start + page_size], meta


def queue_position(value: str | None) -> int | None:
    """Twilio's ``job_queue_position`` is a string ("1"); a number here, None when Twilio gives none."""
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def job_row(tj: TwilioJob, resource_type: str, state: str | None) -> dict[str, Any]:
    """One job of Twilio's list as we show it (never its webhook URL: ours carries a token)."""
    return {
        "job_sid": tj.job_sid,
        "resource_type": tj.resource_type or resource_type,
        "friendly_name": tj.friendly_name,
        "email": tj.email,
        "start_day": tj.start_day,
        "end_day": tj.end_day,
        "details": [{"status": d.status, "count": d.count, "days": d.days} for d in tj.details],
        "job_queue_position": queue_position(tj.job_queue_position),
        "estimated_completion_time": utc_text(tj.estimated_completion_time),
        "tracked": state is not None,
        "state": state,
    }


def twilio_jobs(svc: Services, resource_type: Any, account: Account, page: int, page_size: int) -> dict[str, Any]:
    """Every job Twilio lists for the account's resource type, in Twilio's order, a page of them marked tracked (with
    the job's state here) or not."""
    rt = validate_resource_type(resource_type)
    listed = list(svc.twilio_for(account.sid).list_jobs(rt))
    shown, meta = paged(listed, page, page_size)
    states = svc.jobs.job_states([tj.job_sid for tj in shown])
    return {
        "resource_type": rt,
        "account_sid": account.sid,
        "jobs": [job_row(tj, rt, states[tj.job_sid]) for tj in shown],
        "meta": meta,
    }


def day_row(file: DayFile, resource_type: str, bucket: str) -> dict[str, Any]:
    return {
        "day": file.day,
        "size": file.size,
        "create_date": utc_text(file.create_date),
        "friendly_name": file.friendly_name,
        "resource_type": file.resource_type or resource_type,
        "bucket": bucket,
        "in_bucket": bucket == "copied",
    }


def twilio_days(svc: Services, resource_type: Any, account: Account, page: int, page_size: int) -> dict[str, Any]:
    """Every day file Twilio lists for the account's resource type, in Twilio's order (the order it made them), each
    with the relay's coverage state of its day: ``copied`` (the bucket has it), ``empty``, ``in_flight``, ``failed``
    or ``missing``."""
    rt = validate_resource_type(resource_type)
    listed = list(svc.twilio_for(account.sid).list_days(rt))
    owner = owner_of(rt, account.sid)
    covered = svc.feeds.day_states([owner])[owner]
    shown, meta = paged(listed, page, page_size)
    return {
        "resource_type": rt,
        "account_sid": account.sid,
        "days": [day_row(f, rt, reported_state(covered.get(f.day))) for f in shown],
        "meta": meta,
    }
