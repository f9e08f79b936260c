"""100 concurrent deliveries of the same signed completion webhook: every one is answered 2xx, the job is synced
a handful of times at most, and each day is downloaded once and written to S3 exactly once.

The sandbox's own delivery is dropped, so every delivery is ours: a thread pool behind a barrier POSTs the
callback signed exactly as Twilio signs it. There is no poller, so every sync comes from a delivery. A second
storm after the job is done must change nothing in S3.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from app.jobs.store import JobStore
from app.platform.queueing import QUEUES, sync_job_id
from devstack.procs import wait_until
from tests.chaos.conftest import LONG, assert_days_exact, day, signed_webhook, webhook_url

pytestmark = pytest.mark.chaos

DELIVERIES = 100
RT = "Messages"


def storm(url: str, auth_token: str, n: int) -> Counter[int]:
    """n deliveries released at the same instant; returns the count of each HTTP status."""
    barrier = threading.Barrier(n, timeout=30)

    def deliver(_: int) -> int:
        barrier.wait()
        return signed_webhook(url, auth_token, timeout=30)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return Counter(pool.map(deliver, range(n)))


def settled(rconn: redis.Redis, sid: str) -> bool:
    """A 204 only means a sync was queued: wait until it (and anything it queued) has run."""
    sync_gone = not rconn.exists(Job.key_for(sync_job_id(sid)))  # result_ttl=0: deleted once it ends
    idle = all(Queue(q, connection=rconn).count == 0 for q in QUEUES)
    running = sum(StartedJobRegistry(q, connection=rconn).count for q in QUEUES)
    return sync_gone and idle and running == 0


def test_concurrent_duplicate_webhooks_copy_each_day_once(chaos_stack, sandbox, s3, bucket, redis_server):
    n_days = 30 if LONG else 5
    storms = 3 if LONG else 1
    sandbox.set_scenario(webhook={"drop": True}, default_day_size=40_000)
    stack = chaos_stack(workers=2)
    r = stack.api("POST", "/api/jobs", json={"resource_type": RT, "start_day": day(2 + n_days), "end_day": day(3)})
    assert r.status_code == 201, r.text
    sid = r.json()["job_sid"]
    sandbox.complete(sid)  # every day final at "Twilio"; its own webhook is dropped by the scenario
    url = webhook_url(sandbox, sid)

    statuses: Counter[int] = Counter()
    for _ in range(storms):
        statuses += storm(url, sandbox.auth_token, DELIVERIES)
    view = stack.wait_job(sid, timeout=120)
    syncs = JobStore(redis_server.client(decode_responses=True)).get_job(sid).syncs

    assert statuses == {204: DELIVERIES * storms}, statuses
    assert view["state"] == "done", view
    assert view["webhooks_received"] == DELIVERIES * storms
    assert 1 <= syncs <= DELIVERIES * storms
    client = s3.client()
    assert_days_exact(client, bucket, sandbox, RT, view)
    writes = {d["day"]: s3.writes(bucket, d["key"]) for d in view["days"]}
    downloads = Counter(d["day"] for d in sandbox.downloads() if d["status"] == 200)
    assert set(writes.values()) == {1}, writes
    assert downloads == dict.fromkeys(writes, 1), downloads

    # The same storm once the job is done: answered, and nothing is copied again.
    late = storm(url, sandbox.auth_token, DELIVERIES)
    assert late == {204: DELIVERIES}, late
    wait_until(lambda: settled(redis_server.client(), sid), timeout=60, what="the late storm's sync to end")
    assert stack.api("GET", f"/api/jobs/{sid}").json()["state"] == "done"
    assert {d["day"]: s3.writes(bucket, d["key"]) for d in view["days"]} == writes
    assert sum(1 for d in sandbox.downloads() if d["status"] == 200) == n_days

    print(
        f"\nchaos: {DELIVERIES * storms} concurrent deliveries ({storms} burst(s) of {DELIVERIES}) -> "
        f"{statuses[204]} answered 204, {syncs} sync(s), {n_days}/{n_days} days byte-exact, "
        f"{max(writes.values())} write(s) and {max(downloads.values())} download(s) per day; "
        f"{DELIVERIES} more after done -> 0 new writes"
    )
