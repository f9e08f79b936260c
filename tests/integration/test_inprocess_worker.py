"""workers.inprocess_worker.InProcessWorker: tasks run in the worker process, heart-beats stay short and renewed,
the job timeout is enforced, and a task that outlives its timeout by the grace period ends the worker.

Real ``rq worker --worker-class ...`` processes against the session's real Redis; the tasks below report their
pid and wait (polling Redis, with a deadline) until the test releases them. The shipped class runs only the
relay's tasks (tests/e2e/test_json_tasks.py), so these tests run a subclass that allows this module's task too.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.timeouts import JobTimeoutException

from app.platform.queueing import RelayJob
from devstack.procs import ManagedProcess, wait_until
from devstack.redis_server import RedisServer
from devstack.relay import REPO_ROOT, process_env
from workers.inprocess_worker import InProcessWorker

QUEUE = "inprocess-test"
JOB_TIMEOUT = 3600  # SimpleWorker would keep its heart-beat alive for this + 60 s after a crash
MONITORING_INTERVAL = 1


class LocalTaskJob(RelayJob):
    TASKS = RelayJob.TASKS | {f"{__name__}.report_pid_and_wait"}


class LocalTaskWorker(InProcessWorker):
    """The shipped class, allowed to run this module's task."""

    job_class = LocalTaskJob


class QuickGraceWorker(LocalTaskWorker):
    """With a 1-second grace, so that the overrun test does not wait a minute."""

    KILL_GRACE_SECONDS = 1


def report_pid_and_wait(redis_url: str, swallow_timeout: bool = False) -> int:
    """The task: publish this process's pid, then wait for the test's release (at most 60 s)."""
    conn = redis.Redis.from_url(redis_url)
    conn.set("task:pid", os.getpid())
    deadline = time.monotonic() + 60
    while not conn.exists("task:release"):
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        try:
            time.sleep(0.05)  # the task's own polling loop, not a test synchronisation
        except JobTimeoutException:
            if not swallow_timeout:
                raise
            conn.set("task:swallowed", 1)  # a misbehaving task: carries on past its timeout
    return os.getpid()


def start_worker(redis_url: str, tmp_path: Path, worker_class: str) -> ManagedProcess:
    rq_bin = str(Path(sys.executable).parent / "rq")
    argv = [
        rq_bin, "worker", "--burst", "--url", redis_url, "--worker-class", worker_class,
        "--job-monitoring-interval", str(MONITORING_INTERVAL), QUEUE,
    ]  # fmt: skip
    return ManagedProcess("inprocess-worker", argv, tmp_path, env=process_env({}), cwd=REPO_ROOT).start()


def test_tasks_run_in_process_with_renewed_short_heartbeats(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    conn = redis_server.client()
    job = Queue(QUEUE, connection=conn).enqueue(report_pid_and_wait, redis_url, job_timeout=JOB_TIMEOUT)
    worker = start_worker(redis_url, tmp_path, f"{__name__}.LocalTaskWorker")
    try:
        pid = wait_until(lambda: conn.get("task:pid"), timeout=30, what="the task to start")
        assert int(pid) == worker.pid  # no work horse: the worker process runs the task itself

        registry = StartedJobRegistry(QUEUE, connection=conn)

        def expiry() -> float:
            scores = [score for _, score in conn.zrange(registry.key, 0, -1, withscores=True)]
            assert len(scores) == 1, f"expected the running task in the StartedJobRegistry, found {scores}"
            return scores[0]

        first_beat, first_expiry = conn.hget(job.key, "last_heartbeat"), expiry()
        # the forking worker's TTL (interval + 60 s), so a crashed worker's task is retried within about a minute
        assert first_expiry - time.time() <= MONITORING_INTERVAL + 60 + 5
        wait_until(
            lambda: conn.hget(job.key, "last_heartbeat") != first_beat and expiry() > first_expiry,
            timeout=15,
            what="the job's heart-beat and its registry expiry renewed while the task runs",
        )
        assert expiry() > time.time()
        (rq_worker,) = Worker.all(connection=conn)
        assert 0 < conn.ttl(rq_worker.key) <= MONITORING_INTERVAL + 60

        conn.set("task:release", 1)
        wait_until(lambda: not worker.alive(), timeout=30, what="the burst worker to exit")
        job.refresh()
        assert job.get_status() == "finished" and job.return_value() == worker.pid
    finally:
        worker.stop()


def test_the_job_timeout_is_enforced_in_process(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> None:
    conn = redis_server.client()
    job = Queue(QUEUE, connection=conn).enqueue(report_pid_and_wait, redis_url, job_timeout=1)
    worker = start_worker(redis_url, tmp_path, f"{__name__}.LocalTaskWorker")
    try:
        wait_until(lambda: not worker.alive(), timeout=30, what="the burst worker to finish")
        assert worker.proc is not None and worker.proc.returncode == 0  # the worker survived its task's timeout
        job = Job.fetch(job.id, connection=conn)
        assert job.get_status() == "failed"
        assert "JobTimeoutException" in (job.latest_result().exc_string or "")
    finally:
        worker.stop()


def test_a_task_running_past_timeout_and_grace_ends_the_worker(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    conn = redis_server.client()
    Queue(QUEUE, connection=conn).enqueue(report_pid_and_wait, redis_url, True, job_timeout=1)
    worker = start_worker(redis_url, tmp_path, f"{__name__}.QuickGraceWorker")
    try:
        wait_until(lambda: conn.get("task:swallowed"), timeout=60, what="the task to swallow its timeout")
        wait_until(lambda: not worker.alive(), timeout=60, what="the worker to end itself")
        assert worker.proc is not None and worker.proc.returncode == 1
        assert not conn.exists("task:release")  # it was ended, not released
        assert "still running 1 s after its 1 s timeout" in worker.tail()
    finally:
        worker.stop()
