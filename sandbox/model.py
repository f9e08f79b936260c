"""The sandbox's records: jobs (statuses are a pure function of the clock), day files, links, events, webhooks.

Job progress is computed from creation time, ``step_seconds`` and each day's planned outcome, so reads
never race with a background thread; the Store turns the moments something happens into Events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sandbox.scenario import FINAL_STATUS, DayPlan, Scenario, WebhookConfig

STATUS_ORDER = (
    "Submitted",
    "Running",
    "ErrorDuringRun",
    "Completed",
    "CompletedEmptyRecords",
    "Failed",
    "RunningToBeDeleted",
    "DeletedByUserRequest",
)
FINAL_STATUSES = {"Completed", "CompletedEmptyRecords", "Failed", "DeletedByUserRequest"}


@dataclass
class Job:
    """One custom export job; its statuses are computed from these fields and the clock."""

    sid: str
    account_sid: str
    resource_type: str
    friendly_name: str
    start_day: date
    end_day: date
    webhook_url: str | None
    webhook_method: str | None
    email: str | None
    created_mono: float
    created_wall: datetime
    days: list[date]
    plans: list[DayPlan]
    scenario: Scenario
    forced_at: float | None = None
    deleted_at: float | None = None
    finished_at: float | None = None
    webhook_fired: bool = False
    applied: set[int] = field(default_factory=set)

    @property
    def step(self) -> float:
        return self.scenario.step_seconds

    def natural_final(self, i: int) -> float:
        """When day ``i`` reaches its final status if nobody intervenes."""
        s = self.scenario
        t = self.created_mono + self.step * (2 + i // s.days_per_step)
        if self.plans[i].outcome == "error_then_completed":
            t += self.step * s.error_steps
        return t

    def error_from(self, i: int) -> float:
        return self.created_mono + self.step * (2 + i // self.scenario.days_per_step)

    def final_time(self, i: int) -> float:
        t = self.natural_final(i)
        return min(t, self.forced_at) if self.forced_at is not None else t

    def day_deleted(self, i: int) -> bool:
        return self.deleted_at is not None and self.deleted_at < self.final_time(i)

    def day_status(self, i: int, now: float) -> str:
        if self.day_deleted(i):
            assert self.deleted_at is not None
            return "RunningToBeDeleted" if now < self.deleted_at + self.step else "DeletedByUserRequest"
        if now >= self.final_time(i):
            return FINAL_STATUS[self.plans[i].outcome]
        if now < self.created_mono + self.step:
            return "Submitted"
        if self.plans[i].outcome == "error_then_completed" and now >= self.error_from(i):
            return "ErrorDuringRun"
        return "Running"

    def statuses(self, now: float) -> list[str]:
        return [self.day_status(i, now) for i in range(len(self.days))]

    def details(self, now: float) -> list[dict[str, Any]]:
        groups: dict[str, list[str]] = {}
        for d, st in zip(self.days, self.statuses(now), strict=True):
            groups.setdefault(st, []).append(d.isoformat())
        return [{"status": st, "count": len(groups[st]), "days": groups[st]} for st in STATUS_ORDER if st in groups]

    def is_final(self, now: float) -> bool:
        if self.finished_at is not None and now >= self.finished_at:
            return True  # cheap path: queue positions check every job on every list request
        return all(st in FINAL_STATUSES for st in self.statuses(now))

    def completion_mono(self) -> float:
        """When the last day becomes final (or the deletion settles)."""
        times = [
            (self.deleted_at + self.step) if self.day_deleted(i) and self.deleted_at is not None else self.final_time(i)
            for i in range(len(self.days))
        ]
        return max(times)

    def wall(self, mono: float) -> datetime:
        return self.created_wall + timedelta(seconds=mono - self.created_mono)


@dataclass
class DayFile:
    """The current file of one (account, resource type, day): the latest export of it wins.

    ``job_sid`` is None for a file made by the daily auto-export.
    """

    account_sid: str
    resource_type: str
    day: date
    target_size: int
    size: int
    seed: int
    outcome: str
    job_sid: str | None
    friendly_name: str
    created_wall: datetime
    object_id: str

    @property
    def target(self) -> int:
        return 0 if self.outcome == "empty_file" else self.target_size

    def key(self) -> str:
        """S3 object key, in the shape of Twilio's bucket (decoded form)."""
        return (
            f"daily/day={self.day.isoformat()}/type={self.resource_type}/account={self.account_sid}/"
            f"created_time={self.created_wall.strftime('%Y%m%d%H%M%S')}/part-0{self.object_id}.json.gz"
        )


@dataclass
class Link:
    """A presigned, single-use download link handed out by FetchDay."""

    signature: str
    file: DayFile
    created_mono: float
    created_wall: datetime
    ttl: float
    used: bool = False


@dataclass
class Event:
    """Something that happens at a mono time: a job's day becomes final ("day"), a job finishes ("job"),
    a daily export file appears ("daily"), a daily export webhook is sent ("daily_hook")."""

    at: float
    seq: int
    kind: str
    sid: str  # the job sid, or the account sid for daily events
    index: int = -1
    resource_type: str = ""
    day: date | None = None
    wall: datetime | None = None  # for daily events: the UTC time the file is made
    call: WebhookCall | None = None

    def __lt__(self, other: Event) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)


@dataclass(frozen=True)
class WebhookCall:
    """What the notifier needs to deliver one webhook: a job's completion, or a daily export's file.

    Signed with the current auth token of ``account_sid`` (the notifier's default token when empty).
    """

    job_sid: str | None
    resource_type: str
    url: str
    method: str
    config: WebhookConfig
    reason: str  # "completed" | "redeliver" | "daily"
    account_sid: str = ""
    kind: str = "job"  # "job" | "daily"
    day: str | None = None  # the exported day, for daily webhooks


def iso_millis(dt: datetime) -> str:
    """``yyyy-mm-ddTHH:MM:SS.mmm`` (Twilio's estimated_completion_time has no zone suffix)."""
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
