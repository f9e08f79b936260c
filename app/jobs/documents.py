"""The documents people read: a job's status (API, CLI) and its days (the same list goes into the manifest)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from app.jobs.days import DayStore
from app.jobs.records import DayRecord, JobRecord

# The job list's pages (GET /api/jobs, ``relay jobs``)
MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000  # keeps page * page_size inside Redis' 64-bit range
DAY_FIELDS = ("day", "state", "twilio_status", "key", "size", "sha256", "records", "attempts", "error")


def day_views(records: dict[str, DayRecord]) -> list[dict[str, Any]]:
    """One dict per day, in day order: what the API, the CLI and the job manifest show of each day."""
    return [{name: getattr(rec, name) for name in DAY_FIELDS} | {"state": rec.state.value} for rec in records.values()]


def job_view(store: DayStore, job: JobRecord) -> dict[str, Any]:
    """The status document the API and CLI show: our record, Twilio's last view, per-day copy state."""
    days = day_views(store.get_days(job.job_sid))
    counts: dict[str, int] = {}
    for d in days:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    return {
        "job_sid": job.job_sid,
        "resource_type": job.resource_type,
        "account_sid": job.account_sid,
        "start_day": job.start_day,
        "end_day": job.end_day,
        "friendly_name": job.friendly_name,
        "email": job.email or None,
        "origin": job.origin,
        "state": job.state.value,
        "error": job.error or None,
        "last_sync_error": job.last_sync_error or None,
        "manifest_key": job.manifest_key or None,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "webhooks_received": job.webhooks_received,
        "twilio": twilio_view(job.twilio),
        "day_counts": counts,
        "days": days,
    }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def twilio_view(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    """Twilio's last answer about a job as we show it: its ETA with a zone (records kept before zones were added
    are shown the same way)."""
    eta = (snapshot or {}).get("estimated_completion_time")
    if not snapshot or not isinstance(eta, str):
        return snapshot
    return snapshot | {"estimated_completion_time": utc_text(eta)}


def utc_text(value: str | None) -> str | None:
    """A time as Twilio writes it, with its zone: Twilio's ``estimated_completion_time`` carries none
    ("2021-03-15T20:20:14.547") and Twilio's times are UTC, so "Z" is added; a value with a zone, a bare day or
    text that is no time at all is returned as it was."""
    if not value or not _NAIVE_TIME.fullmatch(value):
        return value
    return value.replace(" ", "T", 1) + "Z"


_NAIVE_TIME = re.compile(r"\A\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?\Z")
