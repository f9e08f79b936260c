"""Unique enqueues against a real Redis: duplicates, ended tasks and tasks orphaned by a dead worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis
from rq import Queue
from rq.job import Job
from rq.utils import utcformat

from app.platform.locks import LockStore, orphan_key
from app.platform.queueing import CONTROL_QUEUE, Enqueuer, sync_job_id

SID = "JS" + "ef" * 16


def make_enqueuer(redis_url: str) -> Enqueuer:
    """As build_services makes it: RQ on a bytes client, the locks (orphan sightings, locks) on a text one."""
    conn = redis.Redis.from_url(redis_url)
    return Enqueuer(conn, LockStore(redis.Redis.from_url(redis_url, decode_responses=True)), [1])


def popped_long_ago(conn: redis.Redis) -> None:
    """What a worker leaves when it dies between BLPOP and marking the task started (or is just in between)."""
    conn.lpop(Queue(CONTROL_QUEUE, connection=conn).key)
    old = utcformat(datetime.now(UTC) - timedelta(seconds=60))
    conn.hset(Job.key_for(sync_job_id(SID)), "enqueued_at", old)


def test_a_popped_task_is_replaced_only_once_seen_so_twice_apart(redis_url):
    """A live worker passes through 'popped, not started' for milliseconds: one sighting must not replace it
    (that ran the same task twice at once); a second sighting ORPHAN_CONFIRM_SECONDS later does."""
    conn = redis.Redis.from_url(redis_url)
    enqueuer = make_enqueuer(redis_url)
    assert enqueuer.sync(SID)
    assert not enqueuer.sync(SID)  # duplicate of a queued task
    popped_long_ago(conn)
    assert not enqueuer.sync(SID)  # first sighting: only recorded
    assert not enqueuer.sync(SID)  # too soon to confirm
    assert Queue(CONTROL_QUEUE, connection=conn).job_ids == []
    (sighting,) = conn.keys(orphan_key("*", "*"))
    conn.set(sighting, str(time.time() - 60))  # as if first seen a minute ago
    assert enqueuer.sync(SID)  # confirmed: replaced
    assert Queue(CONTROL_QUEUE, connection=conn).job_ids == [sync_job_id(SID)]


def test_a_task_that_starts_between_sightings_is_left_alone(redis_url):
    conn = redis.Redis.from_url(redis_url)
    enqueuer = make_enqueuer(redis_url)
    assert enqueuer.sync(SID)
    popped_long_ago(conn)
    assert not enqueuer.sync(SID)
    conn.hset(Job.key_for(sync_job_id(SID)), "status", "started")  # the worker was alive after all
    (sighting,) = conn.keys(orphan_key("*", "*"))
    conn.set(sighting, str(time.time() - 60))
    assert not enqueuer.sync(SID)
    assert Queue(CONTROL_QUEUE, connection=conn).job_ids == []


def test_a_sighting_outlives_the_longest_gap_between_enqueue_attempts(redis_url):
    """Copy tasks are re-enqueued only by re-syncs, up to MAX_SYNC_DELAY apart: a sighting that expired sooner
    would make every sighting a first one, and the orphan would never be replaced."""
    from app.jobs.lifecycle import MAX_SYNC_DELAY

    conn = redis.Redis.from_url(redis_url)
    enqueuer = make_enqueuer(redis_url)
    assert enqueuer.sync(SID)
    popped_long_ago(conn)
    assert not enqueuer.sync(SID)
    (sighting,) = conn.keys(orphan_key("*", "*"))
    assert conn.ttl(sighting) > 4 * MAX_SYNC_DELAY
