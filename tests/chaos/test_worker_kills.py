"""SIGKILL workers (with a forking worker class, their work horses too) at random points of their copies.

Every day must still land byte-exact and be written once, no listing of the data keys may ever show a partial
object, and the janitor must leave no multipart upload or staging object behind.

A kill point is a random moment of one copy: when a worker is first seen running a copy task, a delay is drawn
uniformly over 80% of its download time (downloads are throttled by the sandbox), and for 40% of the 9 MiB
days the kill also waits for that day's multipart upload to be open. When the moment comes, the worker and its
horse are frozen (SIGSTOP) and SIGKILLed if the horse is still inside that task. Kills run in parallel on up to
five busy workers; each victim is replaced by a new worker at once (a supervisor's restart). Recovery is RQ's
abandoned-job handling, whose floor is the job monitoring interval + 60 s (an RQ constant): the test waits that
out once, not once per kill.

The draws are seeded: CHAOS_SEED=<seed> replays a run's draws (the timing of real processes still varies).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from rq import Queue, Worker

from app.jobs.store import JobStore
from app.platform.queueing import CONTROL_QUEUE
from devstack.procs import wait_until
from tests.chaos.conftest import (
    LONG,
    QUICK,
    DataKeyWatcher,
    assert_days_exact,
    assert_no_leftovers,
    crash,
    data_key,
    day,
    expected_sizes,
    signal_tree,
    signed_webhook,
    webhook_url,
)

pytestmark = pytest.mark.chaos

RT = "Calls"
MiB = 1024 * 1024
# 9 MiB goes through a staging multipart upload (8 MiB parts), 3 MiB as one PutObject (S3_SINGLE_PUT_MAX_MIB=4)
SIZES = (9 * MiB, 3 * MiB)
CHUNK_DELAY_MS = 15  # per 64 KiB chunk: a 9 MiB download takes ~2 s
WORKERS = 5
MAX_KILLS_PER_DAY = 2  # every abandoned attempt uses up one of the day's 5 retries


@dataclass
class Kill:
    worker: str
    task: str
    after: float  # seconds into the copy (since first seen running it)
    upload_open: bool  # the copy had a multipart upload open at that moment


def download_seconds(size: int) -> float:
    """The least a copy takes: the sandbox sleeps CHUNK_DELAY_MS per 64 KiB chunk."""
    return size / (64 * 1024) * CHUNK_DELAY_MS / 1000


def test_sigkill_workers_at_random_points_of_copies(chaos_stack, sandbox, s3, bucket, redis_server):
    n_kills = 20 if LONG else 5
    n_days = n_kills + WORKERS + 1  # fresh days for every kill: never wait for a retry to kill again
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1_000_000))
    rng = random.Random(seed)
    days = [day(3 + i) for i in range(n_days)]
    size_of = {d: SIZES[i % 2] for i, d in enumerate(days)}
    sandbox.set_scenario(days={f"{RT}/{d}": {"outcome": "completed", "size": size_of[d]} for d in days})
    sandbox.set_faults(files={"chunk_delay_ms": CHUNK_DELAY_MS})
    stack = chaos_stack(
        workers=WORKERS,
        poller=True,
        RQ_JOB_MONITORING_INTERVAL="2",
        RQ_MAINTENANCE_INTERVAL="5",
        S3_SINGLE_PUT_MAX_MIB="4",
    )
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": days[-1], "end_day": days[0]})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    sandbox.complete(sid)
    client = s3.client(**QUICK)
    rconn = redis_server.client()
    sizes = expected_sizes(sandbox, RT, days)

    kills: list[Kill] = []
    killed_per_task: Counter[str] = Counter()
    # (worker, task) -> (first seen, kill after that many seconds, only once its multipart upload is open)
    plans: dict[tuple[str, str], tuple[float, float, bool]] = {}
    spawned = [WORKERS]

    def upload_open(the_day: str) -> bool:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads") or []
        return any(u["Key"].endswith(f"/{RT}-{the_day}.json.gz") for u in uploads)

    def kill_step() -> bool:
        """One pass: kill every busy worker whose drawn moment has come; True once all kills are done."""
        by_pid = {p.pid: (name, p) for name, p in stack.procs.items() if name.startswith("worker") and p.alive()}
        for w in Worker.all(connection=rconn):
            task = w.get_current_job_id()
            if w.pid not in by_pid or not task or not task.startswith("copy-"):
                continue
            if killed_per_task[task] >= MAX_KILLS_PER_DAY:
                continue
            now = time.monotonic()
            the_day = task[-10:]
            big = size_of[the_day] > 8 * MiB
            first, after, in_upload = plans.setdefault(
                (w.name, task),
                (now, rng.uniform(0, 0.8 * download_seconds(size_of[the_day])), big and rng.random() < 0.4),
            )
            if now - first < after or w.get_current_job_id() != task:
                continue
            was_open = upload_open(the_day)
            if in_upload and not was_open:
                continue  # this kill point is inside the multipart upload: wait for it to open
            name, proc = by_pid[w.pid]
            # Freeze the worker and its horse, then kill them only if the horse is inside the task: a worker
            # killed after popping its next task but before starting it orphans that task, which is the
            # scenario of test_worker_killed_right_after_dequeue, not this one. No S3 call while they are
            # frozen: moto's TLS server stalls for everyone while one client is mid-handshake.
            signal_tree(proc, signal.SIGSTOP)
            if rconn.hget(f"rq:job:{task}", "status") != b"started":
                signal_tree(proc, signal.SIGCONT)
                continue
            crash(proc)
            kills.append(Kill(name, task, round(time.monotonic() - first, 2), was_open))
            killed_per_task[task] += 1
            spawned[0] += 1
            stack.start_worker(f"worker{spawned[0]}")
            if len(kills) >= n_kills:
                return True
        return False

    with DataKeyWatcher(client, bucket, sizes) as watcher:
        wait_until(kill_step, timeout=120 + 10 * n_kills, interval=0.05, what=f"{n_kills} kills mid-copy")
        sandbox.set_faults()  # retries download at full speed
        view = stack.wait_job(sid, timeout=240 + 5 * n_days)
        watcher.check_once()

    assert view["state"] == "done", view
    assert_days_exact(client, bucket, sandbox, RT, view)
    writes = Counter(s3.writes(bucket, data_key(RT, d)) for d in days)
    assert writes == {1: n_days}, writes  # exactly one write per day, kills or not
    assert not watcher.violations, watcher.violations
    assert watcher.listings > 0 and watcher.seen == set(sizes)
    stale_uploads = len(client.list_multipart_uploads(Bucket=bucket).get("Uploads") or [])
    removed = assert_no_leftovers(client, bucket)

    attempts = sum(d["attempts"] for d in view["days"])
    print(
        f"\nchaos (seed {seed}): {len(kills)} SIGKILLs mid-copy, up to {WORKERS} workers at once "
        f"(at {', '.join(f'{k.after}s' for k in kills)} into a copy; {sum(k.upload_open for k in kills)} with its "
        f"multipart upload open; {len(killed_per_task)} distinct days) -> {n_days}/{n_days} days byte-exact "
        f"({attempts} claimed attempts), 1 write per day, 0 partial objects in {watcher.listings} listings, "
        f"janitor removed {removed} leftover(s) ({stale_uploads} multipart upload(s))"
    )


def test_worker_killed_right_after_dequeue(chaos_stack, sandbox, s3, bucket, redis_server):
    """The worker is frozen (SIGSTOP) while it blocks in BLPOP, the webhook queues the sync, Redis hands the
    sync to the frozen worker, and the worker is SIGKILLed: a crash right after dequeuing, made deterministic.
    A new worker and the poller must still get the job synced and copied: the enqueuer recognises the task
    left 'queued' in no queue as orphaned (app/platform/queueing.py: older than ORPHAN_AFTER_SECONDS and seen so
    twice, ORPHAN_CONFIRM_SECONDS apart) and replaces it."""
    sandbox.set_scenario(webhook={"drop": True}, default_day_size=20_000)
    stack = chaos_stack(workers=1)
    the_day = day(3)
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": the_day, "end_day": the_day})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    sandbox.complete(sid)
    rconn = redis_server.client()
    control = Queue(CONTROL_QUEUE, connection=rconn)
    jobs = JobStore(redis_server.client(decode_responses=True))

    def blocked_in_blpop() -> bool:
        return any(c.get("cmd") == "blpop" for c in rconn.client_list())

    wait_until(blocked_in_blpop, timeout=30, what="the worker to wait for work")
    worker = stack.procs["worker1"]
    worker.signal(signal.SIGSTOP)
    url = webhook_url(sandbox, sid)
    assert signed_webhook(url, sandbox.auth_token) == 204
    task = f"sync-{sid}"
    wait_until(lambda: not control.job_ids, timeout=10, what="Redis to hand the sync to the frozen worker")
    crash(worker)
    assert rconn.hget(f"rq:job:{task}", "status") == b"queued"  # popped, never started

    stack.start_worker("worker2")
    stack.start_poller()
    assert signed_webhook(url, sandbox.auth_token) == 204  # Twilio's duplicate delivery
    try:
        view = stack.wait_job(sid, timeout=90)
    except AssertionError as exc:
        syncs = jobs.get_job(sid).syncs
        raise AssertionError(
            f"orphaned RQ task {task} is still {rconn.hget(f'rq:job:{task}', 'status')!r} in no queue; "
            f"{syncs} sync(s) ran despite the poller and a redelivered webhook: {exc}"
        ) from None
    assert view["state"] == "done", view
    assert_days_exact(s3.client(), bucket, sandbox, RT, view)
    print(
        f"\nchaos: worker SIGKILLed between dequeue and start -> orphaned task {task} replaced, "
        f"job done after {jobs.get_job(sid).syncs} sync(s), day byte-exact"
    )
