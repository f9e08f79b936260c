"""The documents people read: a job's status (API, CLI) and its days (the same list goes into the manifest)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.registry import DayRecord, JobRecord, Registry

DAY_FIELDS = ("day", "state", "twilio_status", "key", "size", "sha256", "records", "attempts", "error")


def day_views(records: dict[str, DayRecord]) -> list[dict[str, Any]]:
    """One dict per day, in day order: what the API, the CLI and the job manifest show of each day."""
    return [{name: getattr(rec, name) for name in DAY_FIELDS} | {"state": rec.state.value} for rec in records.values()]


def job_view(registry: Registry, job: JobRecord) -> dict[str, Any]:
    """The status document the API and CLI show: our record, Twilio's last view, per-day copy state."""
    days = day_views(registry.get_days(job.job_sid))
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
        "twilio": job.twilio,
        "day_counts": counts,
        "days": days,
    }


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
