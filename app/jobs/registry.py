"""The job registry: every Redis key this service owns for jobs, days, tokens and quota lives here.

Key layout (prefix ``ber:``; RQ keeps its own ``rq:`` keys):

==================================  ======  ===========================================================  ==========
key                                 type    content                                                      expiry
==================================  ======  ===========================================================  ==========
ber:pending:{token_hash}            hash    a submission before Twilio answered (request fields)          1 day
ber:token:{token_hash}              string  job_sid (or daily:{owner}) the webhook token belongs to       retention*
ber:job:{sid}                       hash    our job record (request, state, Twilio snapshot, counters,    retention*
                                            timestamps, ``resync`` flag: webhook during a running sync)
ber:job:{sid}:days                  hash    day -> JSON day record (state, key, size, sha256, records)    retention*
ber:jobs                            zset    every tracked job_sid by creation time (for listing)          pruned
ber:jobs:active                     zset    non-final job_sid -> when the poller should next sync it      until final
ber:quota:[{family}:]{YYYY-MM-DD}   string  days requested that UTC day by an account family (no family:   2 days
                                            TWILIO_ACCOUNT_SID's), against TWILIO_DAILY_DAY_QUOTA
ber:account:{sid}                   hash    an account's label, family, state (ok, credentials refused,     none
                                            suspended) and last error: never a credential
ber:lock:copy:{acct}:{rt}:{day}     string  owner of the single in-flight copy of that S3 object          job timeout
ber:lock:poll                       string  the running poll (one at a time across poller replicas)       300 s
ber:lock:enqueue:{rq_job_id}        string  owner of the replacement of an ended RQ task (queueing)       10 s
ber:orphan:{rq_job_id}:{enqueued}   string  first sighting of a popped-but-never-started task (queueing)  1 day
ber:poller:last_run                 string  unix time of the last completed poll                          none
ber:webhooks:signed_seen            string  when the first validly signed webhook arrived (policy auto)    none
ber:hookrate:{sid}                  string  a webhook queued this job's sync lately (rate limit)          60 s
ber:accounts                        set     SIDs with a ber:account hash                                  none
ber:metrics                         hash    cluster-wide counters and histograms (app/platform/metrics.py)         none
ber:registry:marker                 hash    this registry's id and birth (a copy is in the bucket: recovery) none
ber:event:{event_id}                string  an outbound event was emitted (app/jobs/events.py): never twice    8 days
ber:store:probe:{bucket}:{endpoint} string  the S3 store probe's findings, JSON (app/bucket/probe.py)        6 h
ber:lock:store-probe:{bucket}:{ep}  string  one store probe at a time across workers (app/bucket/probe.py)   60 s
ber:signin:failures:{addr|*}        string  failed console sign-ins this window (guess_limit.py)           15 min
ber:api:auth-failures:{addr}        string  failed API bearer tokens this window (guess_limit.py)          15 min
==================================  ======  ===========================================================  ==========

``retention*``: set once the job is final (``JOB_RETENTION_DAYS``); ``ber:jobs`` is pruned by the poller, so
nothing grows without bound. Webhook tokens are stored only as SHA-256 hashes: a Redis dump does not reveal them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import redis

from app.jobs.records import DayRecord, DayState, JobRecord, JobState
from app.platform.errors import QuotaExceeded

PREFIX = "ber:"
PENDING_TTL = 24 * 3600
QUOTA_TTL = 2 * 24 * 3600
SIGNED_MARKER = f"{PREFIX}webhooks:signed_seen"
TARGET_SEP = "|"  # a token's value: {account_sid}|{target}
REGISTRY_MARKER = f"{PREFIX}registry:marker"
ORPHAN_SIGHTING_TTL = 86400  # far longer than any gap between two enqueue attempts (re-syncs: <= 15 min)
DAILY_DAY_QUOTA = 366
# Atomically refuse a submission that would take today's requested days past the quota.
_QUOTA_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if used + want > tonumber(ARGV[2]) then return -1 - used end
local now = redis.call('INCRBY', KEYS[1], want)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return now
"""

# Move a day to COPYING only if it is not already final; returns the previous state ('' if none).
_CLAIM_DAY_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local state = ''
local rec
if raw then rec = cjson.decode(raw); state = rec['state'] else rec = cjson.decode(ARGV[2]) end
if state == 'copied' or state == 'empty' then return state end
rec['state'] = 'copying'
rec['attempts'] = (rec['attempts'] or 0) + 1
rec['updated_at'] = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return state
"""

# Take a copy lock if free, or renew it if the same owner holds it (see Registry.acquire_copy_lock).
_ACQUIRE_LOCK_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


# Store a new job atomically. KEYS: job hash, jobs zset, active zset[, token key, pending key].
# ARGV: sid, created_at, now, token value, field, value, ...
_ADD_JOB_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if #KEYS >= 5 then
  redis.call('SET', KEYS[4], ARGV[4])
  redis.call('DEL', KEYS[5])
end
return 1
"""

# Make a job final once. KEYS: job hash, days hash, active zset[, token key]. ARGV: sid, now, ttl, field, value, ...
_FINISH_JOB_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], 'finalized_at', ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if #KEYS >= 4 then redis.call('EXPIRE', KEYS[4], ARGV[3]) end
return 1
"""

# Re-schedule a job (and set its state) only while it is not final and still exists.
_SCHEDULE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'finalized_at') == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'state', ARGV[3], 'updated_at', ARGV[4]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""


# 1 if every listed day has a final record. Decoded inside Redis so that the check after each copy costs one
# round trip and no transfer of the records (a 366-day job would otherwise read 366 records per copy).
_ALL_DAYS_FINAL_LUA = """
local recs = redis.call('HMGET', KEYS[1], unpack(ARGV))
for _, raw in ipairs(recs) do
  if not raw then return 0 end
  local state = cjson.decode(raw)['state']
  if state ~= 'copied' and state ~= 'empty' and state ~= 'failed' then return 0 end
end
return 1
"""

# A webhook token -> its target (job_sid or daily:{owner}), whether its submission is still pending, and whether
# this deployment has seen a validly signed delivery. KEYS: token, pending, signed-marker.
_WEBHOOK_TARGET_LUA = """
local target = redis.call('GET', KEYS[1]) or ''
local pending = ''
if target == '' and redis.call('EXISTS', KEYS[2]) == 1 then
  pending = redis.call('HGET', KEYS[2], 'account_sid') or '-'
end
return {target, pending, redis.call('EXISTS', KEYS[3])}
"""

# Count an accepted delivery on its job and decide whether it may queue a sync. KEYS: job hash, active zset, the
# job's RQ sync-task hash, its webhook rate key, the signed-delivery marker. ARGV: sid, now, signed (1/0),
# rate seconds. Returns {delivery number, sync task status, allowed (1/0)}.
_RECORD_DELIVERY_LUA = """
if ARGV[3] == '1' then redis.call('SET', KEYS[5], ARGV[2], 'NX') end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, '', 0} end
local delivery = redis.call('HINCRBY', KEYS[1], 'webhooks_received', 1)
local status = redis.call('HGET', KEYS[3], 'status') or ''
if status == 'started' then
  -- the running sync may have read Twilio before this completion: it looks again before it ends, and the
  -- job is due for the poller at once in case the sync had already made its last check
  redis.call('HSET', KEYS[1], 'resync', '1')
  redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])
end
if status == 'queued' or status == 'started' or status == 'scheduled' or status == 'deferred' then
  return {delivery, status, 0}
end
if redis.call('SET', KEYS[4], ARGV[2], 'NX', 'EX', ARGV[4]) then return {delivery, status, 1} end
-- throttled: the poller looks at the job when the limit ends, so a real completion is at most that late
redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[2]) + redis.call('TTL', KEYS[4]), ARGV[1])
return {delivery, status, 0}
"""


class TokenLookup(NamedTuple):
    """What a webhook's token names, before anything of the request is parsed."""

    target: str | None  # job_sid, or daily:{owner}; None if unknown
    pending: bool  # no job yet, but a submission with this token is in flight
    signed_seen: bool  # a validly signed delivery has reached this deployment (WEBHOOK_SIGNATURE=auto)
    account_sid: str = ""  # the account whose auth token signs this webhook ("": TWILIO_ACCOUNT_SID)


class Delivery(NamedTuple):
    number: int  # this delivery's number for the job (0: the job vanished meanwhile)
    sync_status: str  # RQ status of the job's sync task ('' if none)
    may_sync: bool  # no sync covers it and the job's webhook rate limit allows one now


class Registry:
    """All reads and writes of our Redis keys. Methods are small and atomic where concurrency matters."""

    def __init__(
        self,
        client: redis.Redis,
        retention_days: int = 30,
        daily_quota: int = DAILY_DAY_QUOTA,
        default_account: str = "",
    ) -> None:
        self.r = client
        self.default_account = default_account  # TWILIO_ACCOUNT_SID: what records without an account belong to
        self.daily_quota = daily_quota
        self.retention = retention_days * 24 * 3600
        self._quota = client.register_script(_QUOTA_LUA)
        self._claim = client.register_script(_CLAIM_DAY_LUA)
        self._schedule = client.register_script(_SCHEDULE_LUA)
        self._token_lookup = client.register_script(_WEBHOOK_TARGET_LUA)
        self._record_delivery = client.register_script(_RECORD_DELIVERY_LUA)
        self._all_days_final = client.register_script(_ALL_DAYS_FINAL_LUA)
        self._acquire_lock = client.register_script(_ACQUIRE_LOCK_LUA)
        self._add_job = client.register_script(_ADD_JOB_LUA)
        self._finish_job = client.register_script(_FINISH_JOB_LUA)

    # -- keys ---------------------------------------------------------------------------------------------
    @staticmethod
    def job_key(sid: str) -> str:
        return f"{PREFIX}job:{sid}"

    @staticmethod
    def days_key(sid: str) -> str:
        return f"{PREFIX}job:{sid}:days"

    # -- quota --------------------------------------------------------------------------------------------
    def _quota_key(self, utc_date: str, family: str) -> str:
        """One counter per account family (a parent and its subaccounts) and UTC day; TWILIO_ACCOUNT_SID's family
        keeps the key of single-account versions."""
        if not family or family == self.default_account:
            return f"{PREFIX}quota:{utc_date}"
        return f"{PREFIX}quota:{family}:{utc_date}"

    def reserve_quota(self, utc_date: str, days: int, limit: int | None = None, family: str = "") -> int:
        """Count ``days`` against the family's quota that day or raise QuotaExceeded (atomic across processes).
        ``limit``: a lower ceiling for this caller (the planner leaves FEED_QUOTA_RESERVE_DAYS for manual use)."""
        ceiling = self.daily_quota if limit is None else min(limit, self.daily_quota)
        result = int(self._quota(keys=[self._quota_key(utc_date, family)], args=[days, ceiling, QUOTA_TTL]))
        if result < 0:
            raise QuotaExceeded(used=-1 - result, wanted=days, quota=ceiling)
        return result

    def release_quota(self, utc_date: str, days: int, family: str = "") -> None:
        """Give back days reserved for a submission Twilio refused outright."""
        self.r.decrby(self._quota_key(utc_date, family), days)

    def quota_used(self, utc_date: str, family: str = "") -> int:
        return int(self.r.get(self._quota_key(utc_date, family)) or 0)

    # -- submissions and tokens ---------------------------------------------------------------------------
    def add_pending(self, token_hash: str, request: dict[Any, Any]) -> None:
        """Record the token before Twilio is called, so an early webhook is recognised, never refused."""
        key = f"{PREFIX}pending:{token_hash}"
        with self.r.pipeline() as p:
            p.hset(key, mapping={**request, "created_at": str(time.time())})
            p.expire(key, PENDING_TTL)
            p.execute()

    def pending_exists(self, token_hash: str) -> bool:
        return bool(self.r.exists(f"{PREFIX}pending:{token_hash}"))

    def job_for_token(self, token_hash: str) -> str | None:
        value = self.r.get(f"{PREFIX}token:{token_hash}")
        return str(value).rpartition(TARGET_SEP)[2] if value else None

    def set_token(self, token_hash: str, target: str, account_sid: str, replaces: str | None = None) -> None:
        """Point a webhook token at ``target`` (``daily:{owner}`` for daily exports) of ``account_sid``."""
        with self.r.pipeline() as p:
            if replaces:
                p.delete(f"{PREFIX}token:{replaces}")
            p.set(f"{PREFIX}token:{token_hash}", f"{account_sid}{TARGET_SEP}{target}")
            p.execute()

    def drop_token(self, token_hash: str) -> None:
        self.r.delete(f"{PREFIX}token:{token_hash}")

    def drop_pending(self, token_hash: str) -> None:
        self.r.delete(f"{PREFIX}pending:{token_hash}")

    def pending_submissions(self) -> dict[str, dict[str, str]]:
        """token_hash -> request of submissions whose Twilio answer never arrived (kept to reconcile them)."""
        out = {}
        for key in self.r.scan_iter(f"{PREFIX}pending:*", count=500):
            data = self.r.hgetall(key)
            if data:
                out[str(key).removeprefix(f"{PREFIX}pending:")] = {str(k): str(v) for k, v in data.items()}
        return out

    def lookup_token(self, token_hash: str) -> TokenLookup:
        """The webhook's first step, one round trip: what the token names (nothing of the request is parsed yet)."""
        keys = [f"{PREFIX}token:{token_hash}", f"{PREFIX}pending:{token_hash}", SIGNED_MARKER]
        value, pending, signed_seen = self._token_lookup(keys=keys)
        account, _, target = str(value).rpartition(TARGET_SEP)  # tokens of single-account versions: no account
        if pending and pending != "-":
            account = str(pending)
        return TokenLookup(target or None, bool(pending), bool(int(signed_seen)), account or self.default_account)

    def record_delivery(self, sid: str, sync_task_key: str, signed: bool, rate_seconds: int) -> Delivery:
        """Count an accepted delivery on its job (one round trip; see _RECORD_DELIVERY_LUA). ``sync_task_key``:
        RQ's hash of the job's sync task, from the caller, so this module need not know RQ's key layout."""
        keys = [self.job_key(sid), f"{PREFIX}jobs:active", sync_task_key, f"{PREFIX}hookrate:{sid}", SIGNED_MARKER]
        number, status, allowed = self._record_delivery(
            keys=keys, args=[sid, time.time(), "1" if signed else "0", rate_seconds]
        )
        return Delivery(int(number), str(status), bool(int(allowed)))

    def webhook_rate_ok(self, target: str, rate_seconds: int) -> bool:
        """At most one webhook-triggered action per target and ``rate_seconds`` (daily-export sweeps)."""
        return bool(self.r.set(f"{PREFIX}hookrate:{target}", str(time.time()), nx=True, ex=rate_seconds))

    def mark_signed_seen(self, at: float | None = None) -> None:
        """Remember that a validly signed delivery was seen (``at``: when, restored by app/jobs/recovery.py; else
        now)."""
        self.r.set(SIGNED_MARKER, str(time.time() if at is None else at), nx=True)

    def signed_seen(self) -> float | None:
        value = self.r.get(SIGNED_MARKER)
        return float(str(value)) if value else None

    # -- jobs ---------------------------------------------------------------------------------------------
    def add_job(self, job: JobRecord) -> bool:
        """Store a new job (and its token mapping) in one atomic step; False if the sid is already tracked.

        One script, so a failure can never leave half a record behind (a stub would block the sid for good)."""
        keys = [self.job_key(job.job_sid), f"{PREFIX}jobs", f"{PREFIX}jobs:active"]
        if job.token_hash:
            keys += [f"{PREFIX}token:{job.token_hash}", f"{PREFIX}pending:{job.token_hash}"]
        fields = [item for pair in job.to_redis().items() for item in pair]
        token_value = f"{job.account_sid}{TARGET_SEP}{job.job_sid}" if job.account_sid else job.job_sid
        return bool(self._add_job(keys=keys, args=[job.job_sid, job.created_at, time.time(), token_value, *fields]))

    def get_job(self, sid: str) -> JobRecord | None:
        data = self.r.hgetall(self.job_key(sid))
        if not data or "resource_type" not in data:
            return None
        job = JobRecord.from_redis(data)  # type: ignore[arg-type]
        job.account_sid = job.account_sid or self.default_account
        return job

    def update_job(self, sid: str, **fields: Any) -> None:
        mapping: dict[Any, Any] = {k: (json.dumps(v) if k == "twilio" else str(v)) for k, v in fields.items()}
        mapping["updated_at"] = str(time.time())
        self.r.hset(self.job_key(sid), mapping=mapping)

    def count_sync(self, sid: str) -> int:
        """Count a sync starting; it clears any re-sync request, since what it reads from Twilio is newer."""
        with self.r.pipeline() as p:
            p.hincrby(self.job_key(sid), "syncs", 1)
            p.hdel(self.job_key(sid), "resync")
            syncs, _ = p.execute()
        return int(syncs)

    def count_not_found(self, sid: str) -> int:
        """Count one more 404 from Twilio for the job (reset by ``update_job(sid, not_found=0)``)."""
        return int(self.r.hincrby(self.job_key(sid), "not_found", 1))

    def take_resync_request(self, sid: str) -> bool:
        """True once if a signed webhook arrived while a sync of this job was running (see webhook_lookup)."""
        return bool(self.r.hdel(self.job_key(sid), "resync"))

    def list_jobs(
        self, offset: int = 0, limit: int = 50, account_sid: str | None = None, resource_type: str | None = None
    ) -> tuple[list[JobRecord], int]:
        """Newest first, with the total count for paging; ``account_sid`` / ``resource_type``: only the jobs of that
        account / resource type (no per-account or per-type index is kept: each job's owner and type are read in
        pipelined batches, one HMGET per job kept for JOB_RETENTION_DAYS)."""
        if account_sid is None and resource_type is None:
            sids = [str(s) for s in self.r.zrevrange(f"{PREFIX}jobs", offset, offset + limit - 1)]
            total = int(self.r.zcard(f"{PREFIX}jobs"))
        else:
            matches = self._jobs_matching(account_sid, resource_type)
            sids, total = matches[offset : offset + limit], len(matches)
        return [j for j in (self.get_job(s) for s in sids) if j is not None], total

    def job_states(self, sids: Sequence[str]) -> dict[str, str | None]:
        """sid -> the tracked job's state, or None when it is not tracked here; one pipelined round trip."""
        with self.r.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hget(self.job_key(sid), "state")
            states = pipe.execute()
        return {sid: (str(state) if state else None) for sid, state in zip(sids, states, strict=True)}

    def _jobs_matching(self, account_sid: str | None, resource_type: str | None, batch: int = 500) -> list[str]:
        sids = [str(s) for s in self.r.zrevrange(f"{PREFIX}jobs", 0, -1)]
        matches: list[str] = []
        for start in range(0, len(sids), batch):
            chunk = sids[start : start + batch]
            with self.r.pipeline(transaction=False) as pipe:
                for sid in chunk:
                    pipe.hmget(self.job_key(sid), ["account_sid", "resource_type"])
                fields = pipe.execute()
            matches += [
                s
                for s, (owner, rt) in zip(chunk, fields, strict=True)
                if account_sid in (None, owner or self.default_account) and resource_type in (None, rt)
            ]
        return matches

    def schedule_sync(self, sid: str, at: float, state: JobState | None = None) -> bool:
        """Tell the poller when to look at a job next (and optionally set its state), unless the job went final
        meanwhile: a sync racing with a cancel or with the last copy must not resurrect a finished job."""
        return bool(
            self._schedule(
                keys=[self.job_key(sid), f"{PREFIX}jobs:active"],
                args=[sid, at, state.value if state else "", time.time()],
            )
        )

    def deactivate(self, sid: str) -> None:
        """Stop polling a job (it is final, or no longer tracked)."""
        self.r.zrem(f"{PREFIX}jobs:active", sid)

    def due_jobs(self, now: float | None = None, limit: int = 1000) -> list[str]:
        now = time.time() if now is None else now
        return [str(s) for s in self.r.zrangebyscore(f"{PREFIX}jobs:active", "-inf", now, start=0, num=limit)]

    def active_jobs(self) -> list[str]:
        return [str(s) for s in self.r.zrange(f"{PREFIX}jobs:active", 0, -1)]

    def finish_job(self, sid: str, state: JobState, **fields: Any) -> bool:
        """Mark a job final exactly once (``finalized_at`` set only if absent) and start its retention clock, in
        one atomic script: a failure between steps can never leave a final job that still looks active."""
        job = self.get_job(sid)
        if job is None:
            return False
        keys = [self.job_key(sid), self.days_key(sid), f"{PREFIX}jobs:active"]
        if job.token_hash:
            keys.append(f"{PREFIX}token:{job.token_hash}")
        mapping = {"state": state.value, "updated_at": str(time.time()), **{k: str(v) for k, v in fields.items()}}
        flat = [item for pair in mapping.items() for item in pair]
        return bool(self._finish_job(keys=keys, args=[sid, time.time(), self.retention, *flat]))

    def reopen_job(self, sid: str) -> None:
        """Undo finality so a requeued day can complete the job again."""
        with self.r.pipeline() as p:
            p.hdel(self.job_key(sid), "finalized_at")
            p.hset(self.job_key(sid), mapping={"state": JobState.COPYING.value, "updated_at": str(time.time())})
            p.persist(self.job_key(sid))
            p.persist(self.days_key(sid))
            p.zadd(f"{PREFIX}jobs:active", {sid: time.time()})
            p.execute()

    def prune_jobs(self, now: float | None = None) -> int:
        """Drop listing entries whose job records have expired (the records expire by TTL)."""
        now = time.time() if now is None else now
        old = self.r.zrangebyscore(f"{PREFIX}jobs", "-inf", now - self.retention)
        gone: list[Any] = [s for s in old if not self.r.exists(self.job_key(str(s)))]
        if gone:
            self.r.zrem(f"{PREFIX}jobs", *gone)
        return len(gone)

    # -- days ---------------------------------------------------------------------------------------------
    def get_days(self, sid: str) -> dict[str, DayRecord]:
        raw = self.r.hgetall(self.days_key(sid))
        return {str(d): DayRecord.from_json(str(v)) for d, v in sorted(raw.items())}

    def all_days_final(self, sid: str, days: Sequence[str]) -> bool:
        """Whether each of ``days`` has a record in a final state (copied, empty, failed)."""
        for start in range(0, len(days), 1000):  # unpack() in Lua has a stack limit of a few thousand
            if not int(self._all_days_final(keys=[self.days_key(sid)], args=list(days[start : start + 1000]))):
                return False
        return True

    def get_day(self, sid: str, day: str) -> DayRecord | None:
        raw = self.r.hget(self.days_key(sid), day)
        return DayRecord.from_json(str(raw)) if raw else None

    def ensure_days(self, sid: str, days: Iterable[DayRecord]) -> None:
        """Add day records that do not exist yet (never overwrite progress)."""
        with self.r.pipeline() as p:
            for rec in days:
                p.hsetnx(self.days_key(sid), rec.day, rec.to_json())
            p.execute()

    def put_day(self, sid: str, rec: DayRecord) -> None:
        rec.updated_at = time.time()
        self.r.hset(self.days_key(sid), rec.day, rec.to_json())

    def claim_day(self, sid: str, day: str) -> DayState | None:
        """Atomically mark a day COPYING unless it is already copied/empty. Returns the previous state."""
        template = DayRecord(day=day).to_json()
        prev = self._claim(keys=[self.days_key(sid)], args=[day, template, time.time()])
        return DayState(str(prev)) if prev else None

    # -- copy locks (one in-flight copy per S3 object, across jobs that export the same day) ---------------
    def acquire_copy_lock(self, scope: str, day: str, owner: str, ttl_seconds: int) -> bool:
        """Take the lock, or take it back when ``owner`` already holds it.

        The owner is the copy task's RQ job id, the same for every attempt of that task, and RQ runs an attempt
        only once the previous one has ended or been given up as abandoned. So a lock held by the same owner
        was left by an attempt that died without releasing it (a SIGKILLed worker): without taking it
        back, every retry would fail with CopyBusy until the lock expired and the day would end up FAILED.
        """
        return self.acquire_lock(f"copy:{scope}:{day}", owner, ttl_seconds)

    def release_copy_lock(self, scope: str, day: str, owner: str) -> None:
        """``scope``: ``{account_sid}:{resource_type}``, the S3 objects of one account's resource type."""
        self.release_lock(f"copy:{scope}:{day}", owner)

    def acquire_lock(self, name: str, owner: str, ttl_seconds: int) -> bool:
        """``ber:lock:{name}`` for ``owner`` (or renewed when ``owner`` already holds it), expiring by itself."""
        return bool(self._acquire_lock(keys=[f"{PREFIX}lock:{name}"], args=[owner, ttl_seconds]))

    def release_lock(self, name: str, owner: str) -> None:
        """Delete the lock only if ``owner`` holds it, so one that expired and was taken by another is not freed."""
        self.r.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
            1,
            f"{PREFIX}lock:{name}",
            owner,
        )

    # -- RQ task bookkeeping (app/platform/queueing.py) -------------------------------------------------------------
    def orphan_first_seen(self, rq_job_id: str, enqueued_at: str, now: float) -> float | None:
        """When this enqueue of ``rq_job_id`` was first seen popped-but-never-started; None on the first sighting
        (which is recorded now). Keyed per enqueue, so a later enqueue of the same id starts afresh."""
        key = f"{PREFIX}orphan:{rq_job_id}:{enqueued_at}"
        if self.r.set(key, str(now), nx=True, ex=ORPHAN_SIGHTING_TTL):
            return None
        value = self.r.get(key)
        return float(str(value)) if value else now

    # -- poller bookkeeping -------------------------------------------------------------------------------
    def mark_poll(self, at: float | None = None) -> None:
        self.r.set(f"{PREFIX}poller:last_run", str(time.time() if at is None else at))

    def last_poll(self) -> float | None:
        value = self.r.get(f"{PREFIX}poller:last_run")
        return float(str(value)) if value else None

    # -- the registry's own marker (app/jobs/recovery.py) ----------------------------------------------------------
    def marker(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.r.hgetall(REGISTRY_MARKER).items()}

    def put_marker(self, fields: dict[str, str]) -> None:
        mapping: dict[Any, Any] = dict(fields)
        self.r.hset(REGISTRY_MARKER, mapping=mapping)

    # -- accounts (app/twilio/accounts.py: credentials stay in memory, only what may be shown is here) -----------------
    def put_account_state(self, sid: str, **fields: str) -> None:
        mapping: dict[Any, Any] = {k: str(v) for k, v in fields.items()} | {"checked_at": str(time.time())}
        with self.r.pipeline() as p:
            p.hset(f"{PREFIX}account:{sid}", mapping=mapping)
            p.sadd(f"{PREFIX}accounts", sid)
            p.execute()

    def account_states(self) -> dict[str, dict[str, str]]:
        sids = sorted(str(s) for s in self.r.smembers(f"{PREFIX}accounts"))
        with self.r.pipeline() as p:
            for sid in sids:
                p.hgetall(f"{PREFIX}account:{sid}")
            found = p.execute()
        return {sid: {str(k): str(v) for k, v in data.items()} for sid, data in zip(sids, found, strict=True)}

    def ping(self) -> bool:
        return bool(self.r.ping())

    # -- outbound events (app/jobs/events.py) ----------------------------------------------------------------------
    def claim_event(self, event_id: str, ttl_seconds: int) -> bool:
        """True for the first emission of this event within ``ttl_seconds`` (a poll finding a lagging feed again
        must not announce it again)."""
        return bool(self.r.set(f"{PREFIX}event:{event_id}", str(time.time()), nx=True, ex=ttl_seconds))

    def release_event(self, event_id: str) -> None:
        """The event could not be queued: let a later emission try again."""
        self.r.delete(f"{PREFIX}event:{event_id}")
