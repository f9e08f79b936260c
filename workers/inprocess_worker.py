"""The RQ worker class the Procfile runs: tasks execute in the worker process itself, no fork per task.

Why: RQ's default ``Worker`` forks a work horse for every task. For a day copy of a few hundred KiB that
fork is most of the cost: the horse dirties its copy-on-write pages, opens fresh Redis, Twilio and S3
(TLS) connections and throws them away. Measured by ``bench/fanout.py`` (366 days of 100 KiB, 2 workers):
54 CPU-ms of worker time per day forked against 19 in process (bench/results.json; 46-53 vs 19-24 in
earlier runs). Long-lived worker processes that run task after task are also what Celery and most job
systems do.

What is kept from the forking worker:

- Heart-beats while a task runs. RQ's ``SimpleWorker`` beats once, with a TTL of the whole job timeout plus
  60 s, so a worker SIGKILLed mid-copy would only be seen as dead after the copy's timeout (5 minutes or
  more). Here a thread renews the worker's, the execution's and the job's heart-beat every
  ``--job-monitoring-interval`` seconds with the forking worker's short TTL, so RQ's abandoned-job handling
  retries a crashed worker's task as soon as it would for a killed work horse.
- The job timeout. ``SIGALRM`` raises in the main thread, where the task runs; and, as the forking worker
  kills a horse still alive 60 s after its timeout, the heart-beat thread ends this process if the task
  is still running ``KILL_GRACE_SECONDS`` after its timeout (a task that swallowed the exception, or a
  thread that keeps it busy: s3transfer's reader drains the stream before an aborted upload returns).
  Otherwise the task would outlive its heart-beat TTL, look abandoned and be retried while still running.
  The supervisor restarts the worker and the abandoned task is retried once, like a killed horse's.

What is given up, deliberately: a task that crashes the interpreter (a segfault, the OOM killer) takes the
worker process with it instead of only a horse. The supervisor (Kubernetes, compose ``restart:``) restarts
it and the task is retried like any abandoned one; the copy path never leaves a partial object visible, so
the outcome is the same, later. Memory is bounded per task (``S3_SINGLE_PUT_MAX_MIB`` or the multipart part
buffers) and released when the task ends.

Only the relay's own tasks run. A job names its function by dotted path and RQ imports whatever that path is, so
anyone able to write to Redis could otherwise run any importable function here (``os.system``). Every job goes
through ``app.platform.queueing.RelayJob`` (whatever ``--job-class`` says), and a job it refuses is failed at once
with the
reason, counted (``relay_tasks_refused_total``), never retried, and none of its functions or callbacks imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any

from rq.exceptions import DeserializationError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import BaseWorker, SimpleWorker, WorkerStatus

from app.platform.metrics import TASKS_REFUSED
from app.platform.queueing import RelayJob

log = logging.getLogger(__name__)


class InProcessWorker(SimpleWorker):
    """``SimpleWorker`` plus a heart-beat thread while a task runs (see the module docstring)."""

    KILL_GRACE_SECONDS = 60  # as RQ's forking worker: a task still running this long after its timeout is ended
    job_class: type[Job] = RelayJob

    def __init__(self, queues: Any, *args: Any, job_class: Any = None, **kwargs: Any) -> None:
        """RQ's CLI always passes ``--job-class`` (default: RQ's ``Job``); only a RelayJob (sub)class is taken."""
        if isinstance(job_class, type) and issubclass(job_class, RelayJob):
            self.job_class = job_class
        super().__init__(queues, *args, **kwargs)
        for queue in self.queues:  # the CLI built them with its job class: dequeues and registries use this one
            queue.job_class = self.job_class

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        reason = job.refusal() if isinstance(job, RelayJob) else "task refused: not a relay job"
        if reason is None:
            return super().perform_job(job, queue, execution)
        self._refuse(job, queue, execution, reason)
        return False

    def _refuse(self, job: Job, queue: Queue, execution: Execution, reason: str) -> None:
        """Fail a refused job as RQ fails a raising one, minus what would call into it: no callbacks, no
        webhooks, no retry (it would only be refused again)."""
        TASKS_REFUSED.labels(queue.name).inc()
        log.error("job %s on %s: %s", job.id, queue.name, reason, extra={"job_id": job.id, "queue": queue.name})
        with contextlib.suppress(DeserializationError):  # its procline names the function, which bad data lacks
            self.prepare_job_execution(job, remove_from_intermediate_queue=len(self.queues) == 1)
        job.retries_left = None
        job.webhooks = []
        job._status = JobStatus.FAILED
        job.ended_at = now()
        self.handle_job_failure(
            job, queue, started_job_registry=queue.started_job_registry, exc_string=reason, execution=execution
        )

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        done = threading.Event()
        beat = threading.Thread(
            target=self._beat_until, args=(job, execution, done), name=f"heartbeat-{job.id}", daemon=True
        )
        beat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            done.set()
            beat.join(timeout=self.job_monitoring_interval + 10)  # a beat stuck on Redis must not hang the worker
        self.set_state(WorkerStatus.IDLE)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """The forking worker's short TTL (monitoring interval + 60 s), not SimpleWorker's job timeout + 60 s."""
        return BaseWorker.get_heartbeat_ttl(self, job, working_time)

    def _beat_until(self, job: Job, execution: Execution, done: threading.Event) -> None:
        started = time.monotonic()
        while not done.wait(self.job_monitoring_interval):
            if job.timeout and job.timeout > 0 and time.monotonic() - started > job.timeout + self.KILL_GRACE_SECONDS:
                log.error(
                    "task %s still running %s s after its %s s timeout: ending this worker process",
                    job.id,
                    self.KILL_GRACE_SECONDS,
                    job.timeout,
                )
                logging.shutdown()
                os._exit(1)  # the supervisor restarts the worker; RQ retries the abandoned task
            try:
                self.maintain_heartbeats(job, execution)
            except Exception:  # a missed beat is retried next interval; the task itself goes on
                log.warning("heart-beat of task %s failed", job.id, exc_info=True)
