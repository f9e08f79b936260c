"""Only the relay's own tasks run (issue 20, item 1): the allow-list names every task the workers define, and a
job planted in Redis cannot make a worker's registry maintenance send its RQ webhooks (RQ fails an abandoned job
and posts its webhooks without running it, so refusing to run it is not enough)."""

from __future__ import annotations

import inspect

from redis import Redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.webhook import Webhook

from app.platform.queueing import CONTROL_QUEUE, RELAY_CALLBACKS, RELAY_TASKS, JSONQueue
from tests.tripwire import Tripwire
from workers import tasks
from workers.inprocess_worker import InProcessWorker


def test_every_task_the_workers_define_is_allowed_and_nothing_else() -> None:
    defined = {
        f"{tasks.__name__}.{name}"
        for name, func in inspect.getmembers(tasks, inspect.isfunction)
        if func.__module__ == tasks.__name__ and (name.endswith("_task") or name.startswith("on_"))
    }
    assert defined == RELAY_TASKS | RELAY_CALLBACKS


def test_an_abandoned_forged_job_never_sends_its_webhooks(redis_url: str) -> None:
    conn = Redis.from_url(redis_url)
    with Tripwire() as wire:
        hook = Webhook(f"{wire.url}/leak", "failed", method="POST", timeout=2)
        JSONQueue(CONTROL_QUEUE, connection=conn).enqueue("os.system", "true", job_id="forged", webhooks=[hook])
        # what an attacker writes next: the job marked started by a worker that is gone
        Job.fetch("forged", connection=conn, serializer=JSONSerializer).set_status(JobStatus.STARTED)
        conn.zadd(StartedJobRegistry(CONTROL_QUEUE, connection=conn).key, {"forged:gone": 1})
        worker = InProcessWorker([CONTROL_QUEUE], connection=conn, serializer=JSONSerializer)
        worker.clean_registries()  # every worker's maintenance
        assert Job.fetch("forged", connection=conn, serializer=JSONSerializer).get_status() == JobStatus.FAILED
        assert wire.connections == 0
