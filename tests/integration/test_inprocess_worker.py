"""workers.inprocess_worker.InProcessWorker: tasks run in the worker process, heart-beats stay short and renewed.

A real ``rq worker --worker-class workers.inprocess_worker.InProcessWorker`` process against the session's real
Redis; the task below reports its pid and waits (polling Redis, with a deadline) until the test releases it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import redis
from rq import Queue, Worker
from rq.registry import StartedJobRegistry

from tests.harness.procs import ManagedProcess, wait_until
from tests.harness.redis_server import RedisServer
from tests.harness.stack import REPO_ROOT, process_env

QUEUE = "inprocess-test"
JOB_TIMEOUT = 3600  # SimpleWorker would keep its heart-beat alive for this + 60 s after a crash
MONITORING_INTERVAL = 1


def report_pid_and_wait(redis_url: str) -> int:
    """The task: publish this process's pid, then wait for the test's release (at most 60 s)."""
    conn = redis.Redis.from_url(redis_url)
    conn.set("task:pid", os.getpid())
    deadline = time.monotonic() + 60
    while not conn.exists("task:release"):
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.05)  # the task's own polling loop, not a test synchronisation
    return os.getpid()


def test_tasks_run_in_process_with_renewed_short_heartbeats(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    conn = redis_server.client()
    queue = Queue(QUEUE, connection=conn)
    job = queue.enqueue(report_pid_and_wait, redis_url, job_timeout=JOB_TIMEOUT)
    rq_bin = str(Path(sys.executable).parent / "rq")
    argv = [
        rq_bin, "worker", "--burst", "--url", redis_url,
        "--worker-class", "workers.inprocess_worker.InProcessWorker",
        "--job-monitoring-interval", str(MONITORING_INTERVAL), QUEUE,
    ]  # fmt: skip
    worker = ManagedProcess("inprocess-worker", argv, tmp_path, env=process_env({}), cwd=REPO_ROOT).start()
    try:
        pid = wait_until(lambda: conn.get("task:pid"), timeout=30, what="the task to start")
        assert int(pid) == worker.pid  # no work horse: the worker process runs the task itself

        registry = StartedJobRegistry(QUEUE, connection=conn)
        first = conn.hget(job.key, "last_heartbeat")
        renewed = wait_until(
            lambda: (beat := conn.hget(job.key, "last_heartbeat")) != first and beat,
            timeout=15,
            what="a renewed heart-beat while the task runs",
        )
        assert renewed
        expiries = [score for _, score in conn.zrange(registry.key, 0, -1, withscores=True)]
        assert expiries, "the running task is not in the StartedJobRegistry"
        # the forking worker's TTL (interval + 60 s), so a crashed worker's task is retried within about a minute
        assert max(expiries) - time.time() <= MONITORING_INTERVAL + 60 + 5
        (rq_worker,) = Worker.all(connection=conn)
        assert 0 < conn.ttl(rq_worker.key) <= MONITORING_INTERVAL + 60

        conn.set("task:release", 1)
        wait_until(lambda: not worker.alive(), timeout=30, what="the burst worker to exit")
        job.refresh()
        assert job.get_status() == "finished" and job.return_value() == worker.pid
    finally:
        worker.stop()
