"""What the relay records about a job and each of its days: plain data, no Redis (``app.jobs.store.JobStore`` and
``app.jobs.days.DayStore`` keep them; their module docstrings list the keys)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from app.platform import clock

# A job's ``origin``: "api" (we created it, webhook is ours), "feed" (the planner created it), "adopted" (found
# only by the poller, or tracked on request), "listed" (a day file Twilio listed that nobody submitted here: copied
# without a job at Twilio). app/web/openapi.json documents these (tests/integration/test_api_contract.py).
ORIGINS = ("api", "feed", "adopted", "listed")


class JobState(StrEnum):
    WAITING = "waiting"  # Twilio still exporting (or we have not looked yet)
    COPYING = "copying"  # Twilio finished; days are being copied
    DONE = "done"  # every day final, none failed
    FAILED = "failed"  # every day final, at least one failed (or Twilio lost the job)
    CANCELLED = "cancelled"  # deleted at Twilio on request

    @property
    def final(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class DayState(StrEnum):
    PENDING = "pending"
    COPYING = "copying"
    COPIED = "copied"
    EMPTY = "empty"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (DayState.COPIED, DayState.EMPTY, DayState.FAILED)


@dataclass
class DayRecord:
    day: str
    state: DayState = DayState.PENDING
    key: str | None = None
    size: int | None = None
    sha256: str | None = None
    records: int | None = None
    attempts: int = 0
    error: str | None = None
    twilio_status: str | None = None
    twilio_create_date: str | None = None  # when Twilio made the file: it deletes it 7 days later
    etag: str | None = None  # the ETag S3 gave the copy (coverage compares listings with it: app/bucket/check.py)
    updated_at: float = field(default_factory=clock.now)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> DayRecord:
        data = json.loads(raw)
        data["state"] = DayState(data["state"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})  # tolerate records written by other versions


@dataclass
class JobRecord:
    job_sid: str
    resource_type: str
    start_day: str
    end_day: str
    friendly_name: str = ""
    email: str = ""
    origin: str = "api"  # one of ORIGINS
    account_sid: str = ""  # the Twilio account that owns the job ("" in records of single-account versions)
    state: JobState = JobState.WAITING
    token_hash: str = ""
    twilio: dict[str, Any] | None = None
    error: str = ""
    manifest_key: str = ""
    created_at: float = field(default_factory=clock.now)
    updated_at: float = field(default_factory=clock.now)
    webhooks_received: int = 0
    syncs: int = 0
    last_sync_error: str = ""  # why the last sync could not read Twilio's answer ("" once one succeeds)
    not_found: int = 0  # consecutive 404s from Twilio for this job (sync.LOST_AFTER_NOT_FOUND)
    resync: bool = False  # a signed webhook arrived while a sync was running (JobStore.record_delivery)
    finalized_at: float | None = None  # set exactly once, when the job became final (finish_job)

    def to_redis(self) -> dict[Any, Any]:
        """The hash fields of a new record; ``resync`` and ``finalized_at`` are written only by their own
        atomic operations (a hash field's presence is what they test)."""
        data = asdict(self)
        data["twilio"] = json.dumps(self.twilio) if self.twilio is not None else ""
        for flag in ("resync", "finalized_at"):
            data.pop(flag)
        return {k: str(v) for k, v in data.items()}

    @classmethod
    def from_redis(cls, data: dict[str, str]) -> JobRecord:
        return cls(
            job_sid=data["job_sid"],
            resource_type=data["resource_type"],
            start_day=data["start_day"],
            end_day=data["end_day"],
            friendly_name=data.get("friendly_name", ""),
            email=data.get("email", ""),
            origin=data.get("origin", "api"),
            account_sid=data.get("account_sid", ""),
            state=JobState(data.get("state", JobState.WAITING)),
            token_hash=data.get("token_hash", ""),
            twilio=json.loads(data["twilio"]) if data.get("twilio") else None,
            error=data.get("error", ""),
            manifest_key=data.get("manifest_key", ""),
            created_at=float(data.get("created_at", 0)),
            updated_at=float(data.get("updated_at", 0)),
            webhooks_received=int(data.get("webhooks_received", 0)),
            syncs=int(data.get("syncs", 0)),
            last_sync_error=data.get("last_sync_error", ""),
            not_found=int(data.get("not_found", 0)),
            resync=data.get("resync") == "1",
            finalized_at=float(data["finalized_at"]) if data.get("finalized_at") else None,
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
