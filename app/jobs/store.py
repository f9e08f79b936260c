"""Tracked jobs: our record of each job, the listing of every job, and when the poller should look at each next.

Key layout (prefix ``ber:``; RQ keeps its own ``rq:`` keys):

======================  ======  ===============================================================  ==========
key                     type    content                                                          expiry
======================  ======  ===============================================================  ==========
ber:job:{sid}           hash    our job record (request, state, Twilio snapshot, counters,       retention*
                                timestamps, ``resync`` flag: webhook during a running sync)
ber:jobs                zset    every tracked job_sid by creation time (for listing)             pruned
ber:jobs:active         zset    non-final job_sid -> when the poller should next sync it         until final
======================  ======  ===============================================================  ==========

``retention*``: set once the job is final (``JOB_RETENTION_DAYS``), on the job, its days (``app.jobs.days``) and its
webhook token (``app.jobs.tokens``) in the same atomic step; ``ber:jobs`` is pruned by the poller, so nothing grows
without bound. A new job replaces its pending submission with its token mapping atomically, and a webhook delivery
is counted, rate limited and marks "signed seen" in one script: both name the tokens' keys through
``app.jobs.tokens``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis

from app.jobs.days import days_key
from app.jobs.records import JobRecord, JobState
from app.jobs.tokens import SIGNED_MARKER, hookrate_key, pending_key, token_key, token_value
from app.platform import clock

PREFIX = "ber:"
JOBS_KEY = f"{PREFIX}jobs"
ACTIVE_KEY = f"{PREFIX}jobs:active"


def job_key(sid: str) -> str:
    return f"{PREFIX}job:{sid}"


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


class Delivery(NamedTuple):
    number: int  # this delivery's number for the job (0: the job vanished meanwhile)
    sync_status: str  # RQ status of the job's sync task ('' if none)
    may_sync: bool  # no sync covers it and the job's webhook rate limit allows one now


class JobStore:
    """Job records and their schedule. Methods are small, and atomic (one script) where concurrency matters."""

    def __init__(self, client: redis.Redis, retention_days: int = 30, default_account: str = "") -> None:
        self.r = client
        self.default_account = default_account  # TWILIO_ACCOUNT_SID: what records without an account belong to
        self.retention = retention_days * 24 * 3600
        self._schedule = client.register_script(_SCHEDULE_LUA)
        self._record_delivery = client.register_script(_RECORD_DELIVERY_LUA)
        self._add_job = client.register_script(_ADD_JOB_LUA)
        self._finish_job = client.register_script(_FINISH_JOB_LUA)

    def ping(self) -> bool:
        return bool(self.r.ping())

    # -- records ------------------------------------------------------------------------------------------
    def add_job(self, job: JobRecord) -> bool:
        """Store a new job (and its token mapping) in one atomic step; False if the sid is already tracked.

        One script, so a failure can never leave half a record behind (a stub would block the sid for good)."""
        keys = [job_key(job.job_sid), JOBS_KEY, ACTIVE_KEY]
        if job.token_hash:
            keys += [token_key(job.token_hash), pending_key(job.token_hash)]
        fields = [item for pair in job.to_redis().items() for item in pair]
        value = token_value(job.account_sid, job.job_sid)
        return bool(self._add_job(keys=keys, args=[job.job_sid, job.created_at, clock.now(), value, *fields]))

    def get_job(self, sid: str) -> JobRecord | None:
        data = self.r.hgetall(job_key(sid))
        if not data or "resource_type" not in data:
            return None
        job = JobRecord.from_redis(data)  # type: ignore[arg-type]
        job.account_sid = job.account_sid or self.default_account
        return job

    def update_job(self, sid: str, **fields: Any) -> None:
        mapping: dict[Any, Any] = {k: (json.dumps(v) if k == "twilio" else str(v)) for k, v in fields.items()}
        mapping["updated_at"] = str(clock.now())
        self.r.hset(job_key(sid), mapping=mapping)

    def job_ttl(self, sid: str) -> int:
        """Seconds until the job's record expires (-1: it does not, -2: there is none)."""
        return int(self.r.ttl(job_key(sid)))

    # -- counters -----------------------------------------------------------------------------------------
    def count_sync(self, sid: str) -> int:
        """Count a sync starting; it clears any re-sync request, since what it reads from Twilio is newer."""
        with self.r.pipeline() as p:
            p.hincrby(job_key(sid), "syncs", 1)
            p.hdel(job_key(sid), "resync")
            syncs, _ = p.execute()
        return int(syncs)

    def count_not_found(self, sid: str) -> int:
        """Count one more 404 from Twilio for the job (reset by ``update_job(sid, not_found=0)``)."""
        return int(self.r.hincrby(job_key(sid), "not_found", 1))

    def take_resync_request(self, sid: str) -> bool:
        """True once if a signed webhook arrived while a sync of this job was running (see record_delivery)."""
        return bool(self.r.hdel(job_key(sid), "resync"))

    def record_delivery(self, sid: str, sync_task_key: str, signed: bool, rate_seconds: int) -> Delivery:
        """Count an accepted delivery on its job (one round trip; see _RECORD_DELIVERY_LUA). ``sync_task_key``:
        RQ's hash of the job's sync task, from the caller, so this module need not know RQ's key layout."""
        keys = [job_key(sid), ACTIVE_KEY, sync_task_key, hookrate_key(sid), SIGNED_MARKER]
        number, status, allowed = self._record_delivery(
            keys=keys, args=[sid, clock.now(), "1" if signed else "0", rate_seconds]
        )
        return Delivery(int(number), str(status), bool(int(allowed)))

    # -- listing ------------------------------------------------------------------------------------------
    def list_jobs(
        self, offset: int = 0, limit: int = 50, account_sid: str | None = None, resource_type: str | None = None
    ) -> tuple[list[JobRecord], int]:
        """Newest first, with the total count for paging; ``account_sid`` / ``resource_type``: only the jobs of that
        account / resource type (no per-account or per-type index is kept: each job's owner and type are read in
        pipelined batches, one HMGET per job kept for JOB_RETENTION_DAYS)."""
        if account_sid is None and resource_type is None:
            sids = [str(s) for s in self.r.zrevrange(JOBS_KEY, offset, offset + limit - 1)]
            total = int(self.r.zcard(JOBS_KEY))
        else:
            matches = self._jobs_matching(account_sid, resource_type)
            sids, total = matches[offset : offset + limit], len(matches)
        return [j for j in (self.get_job(s) for s in sids) if j is not None], total

    def job_states(self, sids: Sequence[str]) -> dict[str, str | None]:
        """sid -> the tracked job's state, or None when it is not tracked here; one pipelined round trip."""
        with self.r.pipeline(transaction=False) as pipe:
            for sid in sids:
                pipe.hget(job_key(sid), "state")
            states = pipe.execute()
        return {sid: (str(state) if state else None) for sid, state in zip(sids, states, strict=True)}

    def _jobs_matching(self, account_sid: str | None, resource_type: str | None, batch: int = 500) -> list[str]:
        sids = [str(s) for s in self.r.zrevrange(JOBS_KEY, 0, -1)]
        matches: list[str] = []
        for start in range(0, len(sids), batch):
            chunk = sids[start : start + batch]
            with self.r.pipeline(transaction=False) as pipe:
                for sid in chunk:
                    pipe.hmget(job_key(sid), ["account_sid", "resource_type"])
                fields = pipe.execute()
            matches += [
                s
                for s, (owner, rt) in zip(chunk, fields, strict=True)
                if account_sid in (None, owner or self.default_account) and resource_type in (None, rt)
            ]
        return matches

    # -- schedule -----------------------------------------------------------------------------------------
    def schedule_sync(self, sid: str, at: float, state: JobState | None = None) -> bool:
        """Tell the poller when to look at a job next (and optionally set its state), unless the job went final
        meanwhile: a sync racing with a cancel or with the last copy must not resurrect a finished job."""
        return bool(
            self._schedule(
                keys=[job_key(sid), ACTIVE_KEY],
                args=[sid, at, state.value if state else "", clock.now()],
            )
        )

    def deactivate(self, sid: str) -> None:
        """Stop polling a job (it is final, or no longer tracked)."""
        self.r.zrem(ACTIVE_KEY, sid)

    def due_jobs(self, now: float | None = None, limit: int = 1000) -> list[str]:
        now = clock.now() if now is None else now
        return [str(s) for s in self.r.zrangebyscore(ACTIVE_KEY, "-inf", now, start=0, num=limit)]

    def active_jobs(self) -> list[str]:
        return [str(s) for s in self.r.zrange(ACTIVE_KEY, 0, -1)]

    # -- finality -----------------------------------------------------------------------------------------
    def finish_job(self, sid: str, state: JobState, **fields: Any) -> bool:
        """Mark a job final exactly once (``finalized_at`` set only if absent) and start its retention clock, in
        one atomic script: a failure between steps can never leave a final job that still looks active."""
        found, token_hash = self.r.hmget(job_key(sid), ["job_sid", "token_hash"])  # two fields, not the record
        if not found:
            return False
        keys = [job_key(sid), days_key(sid), ACTIVE_KEY]
        if token_hash:
            keys.append(token_key(str(token_hash)))
        mapping = {"state": state.value, "updated_at": str(clock.now()), **{k: str(v) for k, v in fields.items()}}
        flat = [item for pair in mapping.items() for item in pair]
        return bool(self._finish_job(keys=keys, args=[sid, clock.now(), self.retention, *flat]))

    def reopen_job(self, sid: str) -> None:
        """Undo finality so a requeued day can complete the job again."""
        with self.r.pipeline() as p:
            p.hdel(job_key(sid), "finalized_at")
            p.hset(job_key(sid), mapping={"state": JobState.COPYING.value, "updated_at": str(clock.now())})
            p.persist(job_key(sid))
            p.persist(days_key(sid))
            p.zadd(ACTIVE_KEY, {sid: clock.now()})
            p.execute()

    def prune_jobs(self, now: float | None = None) -> int:
        """Drop listing entries whose job records have expired (the records expire by TTL)."""
        now = clock.now() if now is None else now
        old = self.r.zrangebyscore(JOBS_KEY, "-inf", now - self.retention)
        gone: list[Any] = [s for s in old if not self.r.exists(job_key(str(s)))]
        if gone:
            self.r.zrem(JOBS_KEY, *gone)
        return len(gone)
