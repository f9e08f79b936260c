"""Every RQ task is JSON and one of the relay's own: a pickled job, or a JSON job naming any other function (the
attack: code execution through a job hash written into Redis), is refused by the real `rq worker`, which keeps
serving real tasks; the cron poller's own tasks are JSON relay tasks too."""

from __future__ import annotations

import json
import os
import pickle
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from rq import Callback
from rq.job import Job
from rq.utils import utcformat

from app.platform.queueing import CONTROL_QUEUE, COPY_QUEUE, LAKE_QUEUE, QUEUES, JSONQueue
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


def forge_json_job(conn, job_id: str, queue: str, data: list) -> None:
    """What an attacker with write access to Redis does: a JSON job hash naming any function, pushed on a queue."""
    now = utcformat(datetime.now(UTC))
    mapping = {"data": zlib.compress(json.dumps(data).encode()), "status": "queued", "origin": queue}
    conn.hset(Job.key_for(job_id), mapping=mapping | {"created_at": now, "enqueued_at": now, "timeout": "60"})
    conn.rpush(f"rq:queue:{queue}", job_id)


def counts(url: str, name: str, label: str) -> dict[str, float]:
    """One counter's samples at the web's /metrics, by the value of one label."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {
        sample.labels[label]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def refused_counts(url: str) -> dict[str, float]:
    return counts(url, "relay_tasks_refused_total", "queue")


def test_a_job_naming_any_other_function_is_refused_on_every_queue(make_stack, redis_server, tmp_path, sandbox):
    """The forged jobs never run (no file written), end failed with the reason and are counted; real tasks,
    the worker's and the poller's, still run after them."""
    stack = make_stack(workers=1, poller=True)
    conn = redis_server.client()
    markers, forged = [], []
    for queue in QUEUES:
        marker = tmp_path / f"pwned-{queue}"
        forge_json_job(conn, f"raw-{queue}", queue, ["os.system", None, [f"touch {marker}"], {}])
        # the same with RQ's own API: only the function's name is the attacker's
        JSONQueue(queue, connection=conn).enqueue("os.system", f"touch {marker}", job_id=f"api-{queue}")
        markers.append(marker)
        forged += [(f"raw-{queue}", queue, "'os.system' is not one of the relay's tasks"), (f"api-{queue}", queue, "")]
    # a relay task carrying a foreign callback: refused as a whole, the callback never imported
    JSONQueue(CONTROL_QUEUE, connection=conn).enqueue(
        "workers.tasks.sweep_task", "nobody", job_id="callback", on_failure=Callback("os.system")
    )
    forged.append(("callback", CONTROL_QUEUE, "callback 'os.system' is not one of the relay's callbacks"))

    def ended(job_id: str) -> Job | None:
        job = Job.fetch(job_id, connection=conn)
        return job if job.get_status() in ("finished", "failed") else None

    for job_id, _queue, reason in forged:
        job = wait_until(lambda j=job_id: ended(j), timeout=30, what=f"forged job {job_id} to end")
        assert job.get_status() == "failed", f"forged job {job_id} ran"
        exc = job.latest_result().exc_string or ""
        assert exc.startswith("task refused: ") and reason in exc, exc
    assert refused_counts(stack.url) == {CONTROL_QUEUE: 3, COPY_QUEUE: 2, LAKE_QUEUE: 2}
    r = stack.api(
        "POST", "/api/jobs", json={"resource_type": "Calls", "start_day": "2026-01-01", "end_day": "2026-01-01"}
    )
    assert r.status_code == 201, r.text
    assert stack.wait_job(r.json()["job_sid"])["state"] == "done"  # a sync and its day copy: both relay tasks
    wait_until(lambda: counts(stack.url, "relay_polls_total", "outcome").get("ok"), timeout=30, what="a poll to run")
    assert refused_counts(stack.url) == {CONTROL_QUEUE: 3, COPY_QUEUE: 2, LAKE_QUEUE: 2}  # none of them refused
    assert not any(m.exists() for m in markers), "a forged job ran"
    assert "task refused: 'os.system'" in stack.procs["worker1"].tail(200)
    assert stack.procs["worker1"].alive()
