"""Locks across processes, and once-only claims: who may do something now, or whether it was done already.

Key layout (prefix ``ber:``):

==================================  ======  ==========================================================  ===========
key                                 type    content                                                     expiry
==================================  ======  ==========================================================  ===========
ber:lock:copy:{acct}:{rt}:{day}     string  owner of the single in-flight copy of that S3 object         job timeout
ber:lock:poll                       string  the running poll (one at a time across poller replicas)      300 s
ber:lock:enqueue:{rq_job_id}        string  owner of the replacement of an ended RQ task (queueing)      10 s
ber:lock:{name}                     string  any other named lock (``LockStore.acquire``)                 its ttl
ber:orphan:{rq_job_id}:{enqueued}   string  first sighting of a popped-but-never-started task            1 day
                                            (app/platform/queueing.py)
ber:event:{event_id}                string  an outbound event was emitted (app/jobs/events.py): never    8 days
                                            twice
==================================  ======  ==========================================================  ===========

The store probe's lock (``ber:lock:store-probe:...``) is app/bucket/probe.py's own.
"""

from __future__ import annotations

import redis

from app.platform import clock

PREFIX = "ber:"
ORPHAN_SIGHTING_TTL = 86400  # far longer than any gap between two enqueue attempts (re-syncs: <= 15 min)
POLL_LOCK = "poll"  # the name of the poll's lock (workers/tasks.py)

# Take a lock if free, or renew it if the same owner holds it (see LockStore.acquire_copy_lock).
_ACQUIRE_LOCK_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE_LOCK_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def lock_key(name: str) -> str:
    return f"{PREFIX}lock:{name}"


def orphan_key(rq_job_id: str, enqueued_at: str) -> str:
    return f"{PREFIX}orphan:{rq_job_id}:{enqueued_at}"


def event_key(event_id: str) -> str:
    return f"{PREFIX}event:{event_id}"


class LockStore:
    """Locks expire by themselves, so one held by a process that died frees itself."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._acquire = client.register_script(_ACQUIRE_LOCK_LUA)
        self._release = client.register_script(_RELEASE_LOCK_LUA)

    # -- named locks --------------------------------------------------------------------------------------
    def acquire(self, name: str, owner: str, ttl_seconds: int) -> bool:
        """``ber:lock:{name}`` for ``owner`` (or renewed when ``owner`` already holds it), expiring by itself."""
        return bool(self._acquire(keys=[lock_key(name)], args=[owner, ttl_seconds]))

    def release(self, name: str, owner: str) -> None:
        """Delete the lock only if ``owner`` holds it, so one that expired and was taken by another is not freed."""
        self._release(keys=[lock_key(name)], args=[owner])

    def holder(self, name: str) -> str | None:
        """Who holds the lock now (None: nobody)."""
        value = self.r.get(lock_key(name))
        return str(value) if value is not None else None

    # -- copy locks (one in-flight copy per S3 object, across jobs that export the same day) ---------------
    def acquire_copy_lock(self, scope: str, day: str, owner: str, ttl_seconds: int) -> bool:
        """Take the lock, or take it back when ``owner`` already holds it.

        The owner is the copy task's RQ job id, the same for every attempt of that task, and RQ runs an attempt
        only once the previous one has ended or been given up as abandoned. So a lock held by the same owner
        was left by an attempt that died without releasing it (a SIGKILLed worker): without taking it
        back, every retry would fail with CopyBusy until the lock expired and the day would end up FAILED.
        """
        return self.acquire(f"copy:{scope}:{day}", owner, ttl_seconds)

    def release_copy_lock(self, scope: str, day: str, owner: str) -> None:
        """``scope``: ``{account_sid}:{resource_type}``, the S3 objects of one account's resource type."""
        self.release(f"copy:{scope}:{day}", owner)

    # -- RQ task bookkeeping (app/platform/queueing.py) ---------------------------------------------------
    def orphan_first_seen(self, rq_job_id: str, enqueued_at: str, now: float) -> float | None:
        """When this enqueue of ``rq_job_id`` was first seen popped-but-never-started; None on the first sighting
        (which is recorded now). Keyed per enqueue, so a later enqueue of the same id starts afresh."""
        key = orphan_key(rq_job_id, enqueued_at)
        if self.r.set(key, str(now), nx=True, ex=ORPHAN_SIGHTING_TTL):
            return None
        value = self.r.get(key)
        return float(str(value)) if value else now

    # -- outbound events (app/jobs/events.py) -------------------------------------------------------------
    def claim_event(self, event_id: str, ttl_seconds: int) -> bool:
        """True for the first emission of this event within ``ttl_seconds`` (a poll finding a lagging feed again
        must not announce it again)."""
        return bool(self.r.set(event_key(event_id), str(clock.now()), nx=True, ex=ttl_seconds))

    def release_event(self, event_id: str) -> None:
        """The event could not be queued: let a later emission try again."""
        self.r.delete(event_key(event_id))

    def event_claimed(self, event_id: str) -> bool:
        return bool(self.r.exists(event_key(event_id)))
