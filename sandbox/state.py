"""All mutable sandbox state behind one lock: scenario, jobs, day files, links, faults and logs.

Job progress is a pure function of time (creation time, ``step_seconds``, the day's planned outcome), so
reads never race with a background thread. Side effects of time passing (a day file appearing, a job
finishing and its webhook firing) are queued as timed events and applied in time order at the start of
every public method, under the lock, and by a ticker thread that calls :meth:`Store.tick`. A client that sees
``Completed`` for a day can therefore always fetch that day's file in the very next request.
"""

from __future__ import annotations

import heapq
import secrets
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox import RESOURCE_TYPES
from sandbox.content import day_file_size
from sandbox.scenario import FINAL_STATUS, PRODUCES_FILE, DayPlan, Faults, Scenario, WebhookConfig

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
LOG_LIMIT = 20_000


@dataclass
class Job:
    """One custom export job; its statuses are computed from these fields and the clock."""

    sid: str
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
    """The current file of one (resource type, day): the latest job that produced it wins."""

    resource_type: str
    day: date
    target_size: int
    size: int
    seed: int
    outcome: str
    job_sid: str
    friendly_name: str
    created_wall: datetime
    object_id: str

    @property
    def target(self) -> int:
        return 0 if self.outcome == "empty_file" else self.target_size

    def key(self, account_sid: str) -> str:
        """S3 object key, in the shape of Twilio's bucket (decoded form)."""
        return (
            f"daily/day={self.day.isoformat()}/type={self.resource_type}/account={account_sid}/"
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
class _Event:
    at: float
    seq: int
    kind: str  # "day" | "job"
    sid: str
    index: int = -1

    def __lt__(self, other: _Event) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)


@dataclass(frozen=True)
class WebhookCall:
    """What the notifier needs to deliver one job's completion webhook."""

    job_sid: str
    resource_type: str
    url: str
    method: str
    config: WebhookConfig
    reason: str  # "completed" | "redeliver"


class QuotaExceeded(Exception):
    """More than the daily quota of requested days."""


class Store:
    """Thread-safe state. Public methods take the lock, advance time, and return plain data."""

    def __init__(self, account_sid: str, on_job_final: Callable[[WebhookCall], None] | None = None) -> None:
        self.account_sid = account_sid
        self._lock = threading.RLock()
        self._on_job_final = on_job_final
        self._pending: list[WebhookCall] = []
        self._clock_offset = 0.0  # moved forward by advance_clock(); never backwards
        self._reset_locked(Scenario())

    # ---- plumbing -------------------------------------------------------------------------------
    def set_listener(self, on_job_final: Callable[[WebhookCall], None]) -> None:
        self._on_job_final = on_job_final

    def _reset_locked(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.faults = Faults()
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, OrderedDict[date, DayFile]] = {rt: OrderedDict() for rt in RESOURCE_TYPES}
        self.links: dict[str, Link] = {}
        self.configs: dict[str, dict[str, Any]] = {
            rt: {"enabled": False, "webhook_url": "", "webhook_method": ""} for rt in RESOURCE_TYPES
        }
        self.quota: dict[date, int] = {}
        self.events: list[_Event] = []
        self._seq = 0
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.downloads: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.requests: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)

    @contextmanager
    def _op(self) -> Iterator[float]:
        """Lock, advance to now, run the body; fire webhooks after the lock is released."""
        with self._lock:
            now = time.monotonic() + self._clock_offset
            self._advance_locked(now)
            try:
                yield now
            finally:
                pending, self._pending = self._pending, []
        if self._on_job_final:
            for call in pending:
                self._on_job_final(call)

    def _push(self, at: float, kind: str, sid: str, index: int = -1) -> None:
        self._seq += 1
        heapq.heappush(self.events, _Event(at, self._seq, kind, sid, index))

    def _advance_locked(self, now: float) -> None:
        while self.events and self.events[0].at <= now:
            ev = heapq.heappop(self.events)
            job = self.jobs.get(ev.sid)
            if job is None:
                continue
            if ev.kind == "day":
                self._apply_day(job, ev.index)
            else:
                self._maybe_finish(job, ev.at)

    def _apply_day(self, job: Job, i: int) -> None:
        if i in job.applied or job.day_deleted(i):
            return
        at = job.final_time(i)
        job.applied.add(i)
        plan = job.plans[i]
        if plan.outcome not in PRODUCES_FILE:
            return
        day = job.days[i]
        target = 0 if plan.outcome == "empty_file" else plan.size
        files = self.files[job.resource_type]
        files.pop(day, None)  # a newer export of the same day replaces the file and moves to the end
        files[day] = DayFile(
            resource_type=job.resource_type,
            day=day,
            target_size=plan.size,
            size=day_file_size(job.resource_type, day, target, job.scenario.seed, account_sid=self.account_sid),
            seed=job.scenario.seed,
            outcome=plan.outcome,
            job_sid=job.sid,
            friendly_name=job.friendly_name,
            created_wall=job.wall(at),
            object_id=str(uuid.uuid4()),
        )

    def _maybe_finish(self, job: Job, at: float) -> None:
        if job.finished_at is not None or not job.is_final(at):
            return
        job.finished_at = at
        if job.deleted_at is None and job.webhook_url and job.webhook_method and not job.webhook_fired:
            job.webhook_fired = True
            self._pending.append(self._call(job, "completed"))

    def _call(self, job: Job, reason: str) -> WebhookCall:
        assert job.webhook_url and job.webhook_method
        return WebhookCall(
            job.sid, job.resource_type, job.webhook_url, job.webhook_method, job.scenario.webhook, reason
        )

    def tick(self) -> None:
        """Advance time and drop links nobody can use any more."""
        with self._op() as now:
            # Spent links are kept until well past expiry so a second use still answers AccessDenied.
            dead = [s for s, ln in self.links.items() if now > ln.created_mono + ln.ttl + 60]
            for s in dead:
                del self.links[s]

    # ---- control ----------------------------------------------------------------------------------
    def advance_clock(self, seconds: float) -> float:
        """Jump the sandbox clock forward (jobs progress, links expire) and return the total offset."""
        with self._lock:
            self._clock_offset += max(0.0, seconds)
        with self._op():
            return self._clock_offset

    def reset(self) -> None:
        with self._op():
            self._reset_locked(Scenario())

    def set_scenario(self, scenario: Scenario) -> None:
        with self._op():
            self.scenario = scenario

    def get_scenario(self) -> Scenario:
        with self._op():
            return self.scenario

    def set_faults(self, faults: Faults) -> None:
        with self._op():
            self.faults = faults

    def get_faults(self) -> dict[str, Any]:
        with self._op():
            return self.faults.to_json()

    def complete(self, sid: str) -> bool:
        """Make every unfinished day final now (the webhook fires as on natural completion)."""
        with self._op() as now:
            job = self.jobs.get(sid)
            if job is None:
                return False
            if job.forced_at is None or job.forced_at > now:
                job.forced_at = now
            for i in range(len(job.days)):
                self._apply_day(job, i)
            self._maybe_finish(job, now)
            return True

    def redeliver(self, sid: str) -> WebhookCall | None:
        """A one-off extra delivery of the job's webhook (copies=1, drop ignored)."""
        with self._op():
            job = self.jobs.get(sid)
            if job is None or not job.webhook_url or not job.webhook_method:
                return None
            call = self._call(job, "redeliver")
            return replace(call, config=replace(call.config, copies=1, drop=False))

    def control_jobs(self) -> list[dict[str, Any]]:
        with self._op() as now:
            return [self._control_view(j, now) for j in self.jobs.values()]

    def control_job(self, sid: str) -> dict[str, Any] | None:
        with self._op() as now:
            job = self.jobs.get(sid)
            return self._control_view(job, now) if job else None

    def _control_view(self, job: Job, now: float) -> dict[str, Any]:
        statuses = job.statuses(now)
        final = all(s in FINAL_STATUSES for s in statuses)
        if job.deleted_at is not None:
            state = "deleted"
        elif final:
            state = "final"
        elif all(s == "Submitted" for s in statuses):
            state = "submitted"
        else:
            state = "running"
        return {
            "job_sid": job.sid,
            "resource_type": job.resource_type,
            "friendly_name": job.friendly_name,
            "start_day": job.start_day.isoformat(),
            "end_day": job.end_day.isoformat(),
            "webhook_url": job.webhook_url,
            "webhook_method": job.webhook_method,
            "email": job.email,
            "created_at": _iso(job.created_wall),
            "status": state,
            "final": final,
            "deleted": job.deleted_at is not None,
            "webhook_fired": job.webhook_fired,
            "details": job.details(now),
            "days": {
                d.isoformat(): {"status": st, "outcome": p.outcome, "size": p.size}
                for d, st, p in zip(job.days, statuses, job.plans, strict=True)
            },
        }

    def expected_day(self, resource_type: str, day: date) -> dict[str, Any]:
        """The existing file of that day, or what the current scenario would produce."""
        with self._op():
            f = self.files[resource_type].get(day)
            if f is not None:
                return {
                    "source": "file",
                    "exists": True,
                    "outcome": f.outcome,
                    "target": f.target,
                    "seed": f.seed,
                    "job_sid": f.job_sid,
                }
            plan = self.scenario.plan_for(resource_type, day)
            return {
                "source": "scenario",
                "exists": False,
                "outcome": plan.outcome,
                "target": None
                if plan.outcome not in PRODUCES_FILE
                else (0 if plan.outcome == "empty_file" else plan.size),
                "seed": self.scenario.seed,
                "job_sid": None,
            }

    def log(self, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Append to a log ('deliveries' | 'downloads' | 'requests'); the dict may be updated later."""
        with self._lock:
            getattr(self, kind).append(entry)
        return entry

    def update_log(self, entry: dict[str, Any], **changes: Any) -> None:
        with self._lock:
            entry.update(changes)

    def read_log(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in getattr(self, kind)]

    # ---- faults ------------------------------------------------------------------------------------
    def take_api_fault(self, operation: str | None) -> tuple[str | None, int, int]:
        """(fault or None, retry_after seconds, slow_ms) for one /v1 request."""
        with self._lock:
            f = self.faults
            if f.api_only and operation not in f.api_only:
                return None, f.retry_after, 0
            kind: str | None = None
            if f.api_429 > 0:
                f.api_429 -= 1
                kind = "429"
            elif f.api_500 > 0:
                f.api_500 -= 1
                kind = "500"
            elif f.api_403 > 0:
                f.api_403 -= 1
                kind = "403"
            elif f.api_rate > 0 and f.rng.random() < f.api_rate:
                kind = f.rng.choice(f.api_kinds)
            return kind, f.retry_after, f.api_slow_ms

    def take_files_fault(self) -> tuple[str | None, int, int, int | None]:
        """(fault or None, slow_ms, chunk_delay_ms, cut_at) for one file download."""
        with self._lock:
            f = self.faults
            kind: str | None = None
            if f.files_expired > 0:
                f.files_expired -= 1
                kind = "expired"
            elif f.files_500 > 0:
                f.files_500 -= 1
                kind = "500"
            elif f.files_cut > 0:
                f.files_cut -= 1
                kind = "cut"
            elif f.files_rate > 0 and f.rng.random() < f.files_rate:
                kind = f.rng.choice(f.files_kinds)
            return kind, f.files_slow_ms, f.files_chunk_delay_ms, f.files_cut_at

    # ---- Twilio operations ---------------------------------------------------------------------------
    def today(self) -> date:
        with self._lock:
            return self.scenario.current_day()

    def create_job(
        self,
        resource_type: str,
        start: date,
        end: date,
        friendly_name: str,
        webhook_url: str | None,
        webhook_method: str | None,
        email: str | None,
    ) -> Job:
        """Register a job; raises QuotaExceeded when the day's requested-days quota would be passed."""
        with self._op() as now:
            sc = self.scenario
            today = sc.current_day()
            n = (end - start).days + 1
            used = self.quota.get(today, 0)
            if used + n > sc.daily_quota_days:
                raise QuotaExceeded(
                    f"Export quota exceeded: {used} of {sc.daily_quota_days} days already requested today "
                    f"({today.isoformat()} UTC); this job asks for {n} more. "
                    "Try again after the next UTC day."
                )
            self.quota[today] = used + n
            days = [start + timedelta(days=k) for k in range(n)]
            job = Job(
                sid="JS" + uuid.uuid4().hex,
                resource_type=resource_type,
                friendly_name=friendly_name,
                start_day=start,
                end_day=end,
                webhook_url=webhook_url,
                webhook_method=webhook_method,
                email=email,
                created_mono=now,
                created_wall=_wall_now(sc),
                days=days,
                plans=[sc.plan_for(resource_type, d) for d in days],
                scenario=sc,
            )
            self.jobs[job.sid] = job
            for i in range(n):
                self._push(job.natural_final(i), "day", job.sid, i)
            self._push(job.completion_mono(), "job", job.sid)
            return job

    @contextmanager
    def transaction(self) -> Iterator[float]:
        """Hold the lock (time advanced to the yielded ``now``) while a caller renders jobs consistently."""
        with self._op() as now:
            yield now

    def job(self, sid: str) -> Job | None:
        with self._op():
            return self.jobs.get(sid)

    def jobs_of(self, resource_type: str) -> list[Job]:
        """Jobs of one type, in creation order (so offset paging stays stable as jobs are added)."""
        with self._op():
            return [j for j in self.jobs.values() if j.resource_type == resource_type]

    def queue_positions(self, now: float) -> dict[str, int]:
        """1-based position of every unfinished, undeleted job, oldest first (it can only go down)."""
        with self._lock:
            pending = [j for j in self.jobs.values() if j.deleted_at is None and not j.is_final(now)]
            return {j.sid: k + 1 for k, j in enumerate(pending)}

    def delete_job(self, sid: str) -> bool:
        with self._op() as now:
            job = self.jobs.get(sid)
            if job is None:
                return False
            if job.deleted_at is None and not job.is_final(now):
                job.deleted_at = now
                self._push(job.completion_mono(), "job", job.sid)
            return True

    def day_files(self, resource_type: str) -> list[DayFile]:
        with self._op():
            return list(self.files[resource_type].values())

    def new_link(self, resource_type: str, day: date) -> Link | None:
        with self._op() as now:
            f = self.files[resource_type].get(day)
            if f is None:
                return None
            link = Link(
                signature=secrets.token_hex(32),
                file=f,
                created_mono=now,
                created_wall=_wall_now(self.scenario),
                ttl=self.scenario.link_ttl_seconds,
            )
            self.links[link.signature] = link
            return link

    def claim_link(self, signature: str, key: str) -> tuple[Link | None, str | None]:
        """Look the link up and spend it: (link, problem), problem in None|'unknown'|'expired'|'used'."""
        with self._op() as now:
            link = self.links.get(signature)
            if link is None or link.file.key(self.account_sid) != key:
                return None, "unknown"
            if now > link.created_mono + link.ttl:
                return link, "expired"
            if link.used:
                return link, "used"
            link.used = True
            return link, None

    def get_config(self, resource_type: str) -> dict[str, Any]:
        with self._op():
            return dict(self.configs[resource_type])

    def update_config(self, resource_type: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._op():
            self.configs[resource_type].update(changes)
            return dict(self.configs[resource_type])


def _wall_now(sc: Scenario) -> datetime:
    """UTC wall time (naive), moved onto the scenario's pinned day if there is one."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return datetime.combine(sc.today, now.time()) if sc.today else now


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


iso_millis = _iso
