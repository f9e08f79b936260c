"""Every RQ task is JSON: a pickled job written into Redis (the attack: code execution through a job hash) is
refused by the real `rq worker`, which keeps serving real tasks, and the cron poller's own tasks are JSON too."""

from __future__ import annotations

import json
import os
import pickle
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rq.job import Job
from rq.utils import utcformat

from app.queueing import CONTROL_QUEUE
from devstack.procs import wait_until

pytestmark = pytest.mark.e2e


class Payload:
    """Unpickling this runs a command: what RQ's default pickle serializer would do with a forged job hash."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def forge_pickled_job(conn, job_id: str, marker: Path) -> None:
    now = utcformat(datetime.now(UTC))
    conn.hset(
        Job.key_for(job_id),
        mapping={
            "data": zlib.compress(pickle.dumps(Payload(marker))),
            "status": "queued",
            "origin": CONTROL_QUEUE,
            "created_at": now,
            "enqueued_at": now,
            "description": "forged",
            "timeout": "60",
        },
    )
    conn.rpush(f"rq:queue:{CONTROL_QUEUE}", job_id)


def test_a_pickled_job_is_refused_and_the_worker_keeps_working(make_stack, redis_server, tmp_path, sandbox):
    marker = tmp_path / "pwned"
    stack = make_stack(workers=1)
    conn = redis_server.client()
    forge_pickled_job(conn, "forged-1", marker)
    wait_until(lambda: conn.llen(f"rq:queue:{CONTROL_QUEUE}") == 0, timeout=30, what="the worker to take the job")
    # A real task after it still runs: the worker survived the forged one.
    r = stack.api(
        "POST", "/api/jobs", json={"resource_type": "Calls", "start_day": "2026-01-01", "end_day": "2026-01-01"}
    )
    assert r.status_code == 201, r.text
    stack.wait_job(r.json()["job_sid"])
    assert not marker.exists(), "the pickled payload ran"
    assert stack.procs["worker1"].alive()


def test_the_poller_enqueues_json_tasks(make_stack, redis_server):
    make_stack(workers=0, poller=True)
    conn = redis_server.client()

    def a_poll_job() -> bytes | None:
        for key in conn.scan_iter("rq:job:*"):
            data = conn.hget(key, "data")
            if data and b"poll_task" in zlib.decompress(data):
                return zlib.decompress(data)
        return None

    raw = wait_until(a_poll_job, timeout=30, what="the cron poller to enqueue poll_task")
    func, _instance, args, kwargs = json.loads(raw)
    assert (func, args, kwargs) == ("workers.tasks.poll_task", [], {})
