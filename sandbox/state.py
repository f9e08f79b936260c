"""All mutable sandbox state behind one lock: clock, accounts, scenario, jobs, day files, links, faults, logs.

Job progress is a pure function of time (see sandbox.model), so reads never race with a background
thread. Side effects of time passing (a day file appearing, a job finishing and its webhook firing, a
daily export at a simulated midnight) are queued as timed events and applied in time order at the start
of every public method, under the lock, and by a ticker thread that calls :meth:`Store.tick`. A client
that sees ``Completed`` for a day can therefore always fetch that day's file in the very next request.

Everything Twilio keeps per account (jobs, day files, export configurations) is kept per account here:
one account never sees another's. The daily quota is counted per family (a parent and its subaccounts)
and per simulated UTC day.

Daily auto-export: whenever the clock's UTC day moves forward (real time passing midnight, ``advance``,
or setting a later ``today``/``now``), every midnight crossed is handled in order: for each active account
and each resource type whose configuration is enabled at that moment, the file of the day before that
midnight is generated ``daily_delay_seconds`` after it (sandbox time), listed by ListDay like any other
day (friendly_name "Daily export", create_date the generation day), and the configured webhook is queued
``daily_webhook`` delay after that. A (account, type, day) is generated at most once until reset, so
moving the clock back and forward again repeats nothing; at most the last 366 midnights of one jump count.
"""

from __future__ import annotations

import copy
import heapq
import secrets
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sandbox import DEFAULT_AUTH_TOKEN, RESOURCE_TYPES
from sandbox.accounts import Account, Accounts
from sandbox.clock import SandboxClock, midnights
from sandbox.content import day_file_size
from sandbox.model import (
    FINAL_STATUSES,
    DayFile,
    Event,
    Job,
    Link,
    WebhookCall,
    iso_millis,
)
from sandbox.scenario import PRODUCES_FILE, Faults, Scenario

__all__ = [
    "DayFile",
    "EditionsRequired",
    "Job",
    "Link",
    "QuotaExceeded",
    "Store",
    "WebhookCall",
    "iso_millis",
]

LOG_LIMIT = 20_000
MAX_MIDNIGHTS_PER_MOVE = 366
DAILY_FRIENDLY_NAME = "Daily export"


class QuotaExceeded(Exception):
    """More than the daily quota of requested days."""


class EditionsRequired(Exception):
    """ExportConfiguration Enabled=true on an account without Twilio Editions."""


@dataclass
class AccountData:
    """What Twilio keeps per account: the current file of every (type, day) and the export configurations."""

    files: dict[str, OrderedDict[date, DayFile]] = field(
        default_factory=lambda: {rt: OrderedDict() for rt in RESOURCE_TYPES}
    )
    configs: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            rt: {"enabled": False, "webhook_url": "", "webhook_method": ""} for rt in RESOURCE_TYPES
        }
    )


class Store:
    """Thread-safe state. Public methods take the lock, advance time, and return plain data."""

    def __init__(
        self,
        account_sid: str,
        on_job_final: Callable[[WebhookCall], None] | None = None,
        *,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        api_key_sid: str | None = None,
        api_key_secret: str | None = None,
    ) -> None:
        self.account_sid = account_sid  # the default account
        self._lock = threading.RLock()
        self._on_job_final = on_job_final
        self._pending: list[WebhookCall] = []
        self.clock = SandboxClock()
        self.accounts = Accounts(account_sid, auth_token, api_key_sid, api_key_secret)
        self._reset_locked(Scenario())

    # ---- plumbing -------------------------------------------------------------------------------
    def set_listener(self, on_job_final: Callable[[WebhookCall], None]) -> None:
        self._on_job_final = on_job_final

    def _reset_locked(self, scenario: Scenario) -> None:
        self.clock.reset_wall()
        self.accounts.reset(self.clock.wall())
        self.scenario = scenario
        self.faults = Faults()
        self.jobs: dict[str, Job] = {}
        self.jobs_by_account: dict[str, list[Job]] = {}  # creation order, so many accounts stay cheap
        self.data: dict[str, AccountData] = {}
        self.links: dict[str, Link] = {}
        self.quota: dict[tuple[str, date], int] = {}
        self.events: list[Event] = []
        self._seq = 0
        self._last_day = self.clock.today()
        self._daily_done: set[tuple[str, str, date]] = set()
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.downloads: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.requests: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self.dailies: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)

    def _data(self, account_sid: str) -> AccountData:
        self.accounts.require(account_sid)
        return self.data.setdefault(account_sid, AccountData())

    @contextmanager
    def _op(self) -> Iterator[float]:
        """Lock, advance to now, run the body; fire webhooks after the lock is released."""
        with self._lock:
            now = self.clock.mono()
            self._schedule_midnights_locked(now)
            self._advance_locked(now)
            try:
                yield now
            finally:
                pending, self._pending = self._pending, []
        if self._on_job_final:
            for call in pending:
                self._on_job_final(call)

    def _push(self, at: float, kind: str, sid: str, index: int = -1, **extra: Any) -> None:
        self._seq += 1
        heapq.heappush(self.events, Event(at, self._seq, kind, sid, index, **extra))

    def _advance_locked(self, now: float) -> None:
        while self.events and self.events[0].at <= now:
            ev = heapq.heappop(self.events)
            if ev.kind == "daily":
                self._generate_daily(ev)
                continue
            if ev.kind == "daily_hook":
                if ev.call is not None:
                    self._pending.append(ev.call)
                continue
            job = self.jobs.get(ev.sid)
            if job is None:
                continue
            if ev.kind == "day":
                self._apply_day(job, ev.index)
            else:
                self._maybe_finish(job, ev.at)

    def _new_file(self, account_sid: str, rt: str, day: date, outcome: str, size: int, **how: Any) -> DayFile:
        """Store the current file of (account, rt, day): it replaces an older one and moves to the end."""
        target = 0 if outcome == "empty_file" else size
        seed = self.scenario.seed if "seed" not in how else how.pop("seed")
        files = self._data(account_sid).files[rt]
        files.pop(day, None)  # "listed in order of generation"
        f = DayFile(
            account_sid=account_sid,
            resource_type=rt,
            day=day,
            target_size=size,
            size=day_file_size(rt, day, target, seed, account_sid=account_sid),
            seed=seed,
            outcome=outcome,
            object_id=str(uuid.uuid4()),
            **how,
        )
        files[day] = f
        return f

    def _apply_day(self, job: Job, i: int) -> None:
        if i in job.applied or job.day_deleted(i):
            return
        job.applied.add(i)
        plan = job.plans[i]
        if plan.outcome not in PRODUCES_FILE:
            return
        self._new_file(
            job.account_sid,
            job.resource_type,
            job.days[i],
            plan.outcome,
            plan.size,
            seed=job.scenario.seed,
            job_sid=job.sid,
            friendly_name=job.friendly_name,
            created_wall=job.wall(job.final_time(i)),
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
            job.sid,
            job.resource_type,
            job.webhook_url,
            job.webhook_method,
            job.scenario.webhook,
            reason,
            account_sid=job.account_sid,
        )

    def tick(self) -> None:
        """Advance time and drop links nobody can use any more."""
        with self._op() as now:
            # Spent links are kept until well past expiry so a second use still answers AccessDenied.
            dead = [s for s, ln in self.links.items() if now > ln.created_mono + ln.ttl + 60]
            for s in dead:
                del self.links[s]

    # ---- daily auto-export ----------------------------------------------------------------------
    def _schedule_midnights_locked(self, now: float) -> None:
        """Queue the daily exports of every midnight the clock crossed since the last look."""
        today = self.clock.today()
        crossed = midnights(self._last_day, today)[-MAX_MIDNIGHTS_PER_MOVE:]
        self._last_day = today
        delay = self.scenario.daily_delay_seconds
        for entered in crossed:
            midnight = datetime.combine(entered, time())
            at = min(self.clock.mono_at(midnight), now) + delay  # crossed: never later than now (float noise)
            wall = midnight + timedelta(seconds=delay)
            for sid, data in self.data.items():
                acct = self.accounts.get(sid)
                if acct is None or acct.status != "active":
                    continue
                for rt, cfg in data.configs.items():
                    if cfg["enabled"]:
                        day = entered - timedelta(days=1)
                        self._push(at, "daily", sid, resource_type=rt, day=day, wall=wall)

    def _generate_daily(self, ev: Event) -> None:
        assert ev.day is not None and ev.wall is not None
        key = (ev.sid, ev.resource_type, ev.day)
        if key in self._daily_done or self.accounts.get(ev.sid) is None:
            return
        self._daily_done.add(key)
        plan = self.scenario.plan_for(ev.resource_type, ev.day)
        entry: dict[str, Any] = {
            "account_sid": ev.sid,
            "resource_type": ev.resource_type,
            "day": ev.day.isoformat(),
            "outcome": plan.outcome,
            "generated_at": iso_millis(ev.wall),
            "size": None,
            "webhook": None,
        }
        self.dailies.append(entry)
        if plan.outcome not in PRODUCES_FILE:
            return  # no records / failed: no file and no webhook
        f = self._new_file(
            ev.sid,
            ev.resource_type,
            ev.day,
            plan.outcome,
            plan.size,
            job_sid=None,
            friendly_name=DAILY_FRIENDLY_NAME,
            created_wall=ev.wall,
        )
        entry["size"] = f.size
        cfg = self._data(ev.sid).configs[ev.resource_type]
        if not (cfg["webhook_url"] and cfg["webhook_method"]):
            return
        config, delay = self.scenario.daily_webhook.for_day(ev.day)
        call = WebhookCall(
            None,
            ev.resource_type,
            cfg["webhook_url"],
            cfg["webhook_method"],
            config,
            "daily",
            account_sid=ev.sid,
            kind="daily",
            day=ev.day.isoformat(),
        )
        entry["webhook"] = {"url": call.url, "method": call.method, "delay_seconds": delay, "dropped": config.drop}
        self._push(ev.at + delay, "daily_hook", ev.sid, resource_type=ev.resource_type, day=ev.day, call=call)

    # ---- clock, scenario, faults (control) --------------------------------------------------------
    def move_clock(self, *, advance: float = 0.0, wall: datetime | None = None) -> dict[str, Any]:
        """Set "now" to ``wall`` (if given), then let ``advance`` seconds pass; the clock view afterwards."""
        with self._lock:
            if wall is not None:
                self.clock.set_wall(wall)
            self.clock.advance(advance)
        with self._op():
            return self.clock.to_json()

    def clock_view(self) -> dict[str, Any]:
        with self._op():
            return self.clock.to_json()

    def today(self) -> date:
        with self._lock:
            return self.clock.today()

    def reset(self) -> None:
        with self._op():
            self._reset_locked(Scenario())

    def set_scenario(self, scenario: Scenario) -> None:
        """Replace the scenario; its ``today`` (if any) moves the clock to 00:00 UTC of that day."""
        with self._lock:
            if scenario.today is not None:
                self.clock.set_today(scenario.today)
        with self._op():
            self.scenario = replace(scenario, today=None)

    def get_scenario(self) -> Scenario:
        with self._op():
            return self.scenario

    def scenario_json(self) -> dict[str, Any]:
        """The scenario as the control API shows it: ``today`` is the clock's."""
        with self._op():
            return {**self.scenario.to_json(), "today": self.clock.today().isoformat()}

    def set_faults(self, faults: Faults) -> None:
        with self._op():
            self.faults = faults

    def get_faults(self) -> dict[str, Any]:
        with self._op():
            return self.faults.to_json()

    # ---- jobs and logs (control) -------------------------------------------------------------------
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

    def control_jobs(self, account_sid: str | None = None) -> list[dict[str, Any]]:
        with self._op() as now:
            return [
                self._control_view(j, now)
                for j in self.jobs.values()
                if account_sid is None or j.account_sid == account_sid
            ]

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
            "account_sid": job.account_sid,
            "resource_type": job.resource_type,
            "friendly_name": job.friendly_name,
            "start_day": job.start_day.isoformat(),
            "end_day": job.end_day.isoformat(),
            "webhook_url": job.webhook_url,
            "webhook_method": job.webhook_method,
            "email": job.email,
            "created_at": iso_millis(job.created_wall),
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

    def expected_day(self, account_sid: str, resource_type: str, day: date) -> dict[str, Any]:
        """The existing file of that day, or what the current scenario would produce."""
        with self._op():
            f = self._data(account_sid).files[resource_type].get(day)
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

    def quota_view(self, account_sid: str) -> dict[str, Any]:
        """Requested days per simulated UTC day of the account's family (parent and subaccounts)."""
        with self._op():
            family = self.accounts.family_of(account_sid)
            days = sorted((d, n) for (fam, d), n in self.quota.items() if fam == family)
            today = self.clock.today()
            return {
                "family": family,
                "limit": self.scenario.daily_quota_days,
                "today": today.isoformat(),
                "used_today": self.quota.get((family, today), 0),
                "days": {d.isoformat(): n for d, n in days},
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
        with self._op():  # 'dailies' depends on time passing
            return [dict(e) for e in getattr(self, kind)]

    # ---- accounts (control) -------------------------------------------------------------------------
    def account_views(self) -> list[dict[str, Any]]:
        with self._op():
            return [a.control_view(self.account_sid) for a in self.accounts.by_sid.values()]

    def account_view(self, sid: str) -> dict[str, Any]:
        """Raises UnknownAccount for an unknown account (as do the other account methods)."""
        with self._op():
            return self.accounts.require(sid).control_view(self.account_sid)

    def add_account(self, body: dict[str, Any], parent_sid: str | None) -> dict[str, Any]:
        with self._op():
            acct = self.accounts.add(body, parent_sid, self.clock.wall())
            self._data(acct.sid)
            return acct.control_view(self.account_sid)

    def update_account(self, sid: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._op():
            return self.accounts.update(sid, body, self.clock.wall()).control_view(self.account_sid)

    def rotate_token(self, sid: str, keep_secondary: bool) -> dict[str, Any]:
        with self._op():
            return self.accounts.rotate(sid, keep_secondary, self.clock.wall()).control_view(self.account_sid)

    def set_revoked(self, sid: str, revoked: bool) -> dict[str, Any]:
        with self._op():
            acct = self.accounts.require(sid)
            acct.revoked = revoked
            return acct.control_view(self.account_sid)

    def add_api_key(self, sid: str, body: dict[str, Any]) -> dict[str, str]:
        with self._op():
            key_sid, secret = self.accounts.add_key(sid, body)
            return {"sid": key_sid, "secret": secret, "account_sid": sid}

    def delete_api_key(self, sid: str, key_sid: str) -> bool:
        with self._op():
            return self.accounts.require(sid).keys.pop(key_sid, None) is not None

    # ---- authentication and the Accounts API --------------------------------------------------------
    def authenticate(self, username: str, password: str) -> Account | None:
        """A copy of the account these credentials act as (None if refused)."""
        with self._lock:
            acct = self.accounts.authenticate(username, password)
            return copy.copy(acct) if acct else None

    def visible_accounts(self, caller_sid: str) -> list[Account]:
        with self._op():
            return [copy.copy(a) for a in self.accounts.visible_to(self.accounts.require(caller_sid))]

    def account(self, sid: str) -> Account | None:
        with self._op():
            acct = self.accounts.get(sid)
            return copy.copy(acct) if acct else None

    def signing_token(self, account_sid: str) -> str | None:
        """The auth token a webhook of this account is signed with now (its primary token)."""
        with self._lock:
            acct = self.accounts.get(account_sid)
            return acct.auth_token if acct else None

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

    # ---- Twilio operations (per account) ---------------------------------------------------------------
    def create_job(
        self,
        account_sid: str,
        resource_type: str,
        start: date,
        end: date,
        friendly_name: str,
        webhook_url: str | None,
        webhook_method: str | None,
        email: str | None,
    ) -> Job:
        """Register a job; raises QuotaExceeded when the family's requested days today would pass the quota."""
        with self._op() as now:
            sc = self.scenario
            today = self.clock.today()
            key = (self.accounts.family_of(account_sid), today)
            n = (end - start).days + 1
            used = self.quota.get(key, 0)
            if used + n > sc.daily_quota_days:
                raise QuotaExceeded(
                    f"Export quota exceeded: {used} of {sc.daily_quota_days} days already requested today "
                    f"({today.isoformat()} UTC) by this account and the accounts it shares the quota with; "
                    f"this job asks for {n} more. Try again after the next UTC day."
                )
            self.quota[key] = used + n
            days = [start + timedelta(days=k) for k in range(n)]
            job = Job(
                sid="JS" + uuid.uuid4().hex,
                account_sid=account_sid,
                resource_type=resource_type,
                friendly_name=friendly_name,
                start_day=start,
                end_day=end,
                webhook_url=webhook_url,
                webhook_method=webhook_method,
                email=email,
                created_mono=now,
                created_wall=self.clock.wall_at(now),
                days=days,
                plans=[sc.plan_for(resource_type, d) for d in days],
                scenario=sc,
            )
            self.jobs[job.sid] = job
            self.jobs_by_account.setdefault(account_sid, []).append(job)
            for i in range(n):
                self._push(job.natural_final(i), "day", job.sid, i)
            self._push(job.completion_mono(), "job", job.sid)
            return job

    @contextmanager
    def transaction(self) -> Iterator[float]:
        """Hold the lock (time advanced to the yielded ``now``) while a caller renders jobs consistently."""
        with self._op() as now:
            yield now

    def job(self, account_sid: str, sid: str) -> Job | None:
        """The account's job (another account's job is None, as if it did not exist)."""
        with self._op():
            job = self.jobs.get(sid)
            return job if job is not None and job.account_sid == account_sid else None

    def jobs_of(self, account_sid: str, resource_type: str) -> list[Job]:
        """The account's jobs of one type, in creation order (offset paging stays stable as jobs are added)."""
        with self._op():
            return [j for j in self.jobs_by_account.get(account_sid, []) if j.resource_type == resource_type]

    def queue_positions(self, account_sid: str, now: float) -> dict[str, int]:
        """1-based position of the account's unfinished, undeleted jobs, oldest first (it can only go down)."""
        with self._lock:
            pending = [
                j for j in self.jobs_by_account.get(account_sid, []) if j.deleted_at is None and not j.is_final(now)
            ]
            return {j.sid: k + 1 for k, j in enumerate(pending)}

    def delete_job(self, account_sid: str, sid: str) -> bool:
        with self._op() as now:
            job = self.jobs.get(sid)
            if job is None or job.account_sid != account_sid:
                return False
            if job.deleted_at is None and not job.is_final(now):
                job.deleted_at = now
                self._push(job.completion_mono(), "job", job.sid)
            return True

    def day_files(self, account_sid: str, resource_type: str) -> list[DayFile]:
        with self._op():
            return list(self._data(account_sid).files[resource_type].values())

    def new_link(self, account_sid: str, resource_type: str, day: date) -> Link | None:
        with self._op() as now:
            f = self._data(account_sid).files[resource_type].get(day)
            if f is None:
                return None
            link = Link(
                signature=secrets.token_hex(32),
                file=f,
                created_mono=now,
                created_wall=self.clock.wall_at(now),
                ttl=self.scenario.link_ttl_seconds,
            )
            self.links[link.signature] = link
            return link

    def claim_link(self, signature: str, key: str) -> tuple[Link | None, str | None]:
        """Look the link up and spend it: (link, problem), problem in None|'unknown'|'expired'|'used'."""
        with self._op() as now:
            link = self.links.get(signature)
            if link is None or link.file.key() != key:
                return None, "unknown"
            if now > link.created_mono + link.ttl:
                return link, "expired"
            if link.used:
                return link, "used"
            link.used = True
            return link, None

    def get_config(self, account_sid: str, resource_type: str) -> dict[str, Any]:
        with self._op():
            return dict(self._data(account_sid).configs[resource_type])

    def update_config(
        self, account_sid: str, resource_type: str, changes: dict[str, Any], *, check_editions: bool = True
    ) -> dict[str, Any]:
        """Apply validated changes; Enabled=true needs Editions (the account's flag, else the scenario's)."""
        with self._op():
            acct = self.accounts.require(account_sid)
            editions = self.scenario.editions if acct.editions is None else acct.editions
            if check_editions and changes.get("enabled") and not editions:
                raise EditionsRequired(account_sid)
            cfg = self._data(account_sid).configs[resource_type]
            cfg.update(changes)
            return dict(cfg)

    def configs_of(self, account_sid: str) -> dict[str, dict[str, Any]]:
        with self._op():
            return {rt: dict(c) for rt, c in self._data(account_sid).configs.items()}
