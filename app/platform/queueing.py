"""Queue names, unique RQ job ids, Retry policies and enqueue helpers.

Tasks are referenced by dotted path, so the web process never imports the task modules. Every task is
serialised as JSON (``rq.serializers.JSONSerializer``, the same for every queue, worker and the cron poller):
RQ's default pickle serializer would run whatever a job hash written into Redis told it to. Every enqueue uses a
deterministic job id with RQ's ``unique=True`` (atomic in Redis), which is what turns many webhook deliveries,
polls and re-syncs into one queued task. A job that already *ended* under the same id (finished, failed,
stopped) is replaced, so a requeue or a later sync is never blocked by history.
"""

from __future__ import annotations

import contextlib
import logging
import math
import uuid
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import redis
from rq import Callback, Queue, Retry
from rq.exceptions import DeserializationError, DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.utils import utcparse

from app.platform import clock
from app.platform.locks import LockStore
from app.platform.units import MiB

log = logging.getLogger(__name__)

CONTROL_QUEUE = "relay-control"  # syncs and polls: small, latency matters
COPY_QUEUE = "relay-copy"  # day copies: long, bandwidth bound
LAKE_QUEUE = "relay-lake"  # loads of copied days into the lake (issue 23): after copies, never before them
QUEUES = (CONTROL_QUEUE, COPY_QUEUE, LAKE_QUEUE)

SYNC_TASK = "workers.tasks.sync_job_task"
SWEEP_TASK = "workers.tasks.sweep_task"
RECONCILE_TASK = "workers.tasks.reconcile_task"
RECOVER_TASK = "workers.tasks.recover_task"
VERIFY_TASK = "workers.tasks.verify_task"
MIGRATE_LAYOUT_TASK = "workers.tasks.migrate_layout_task"
COPY_TASK = "workers.tasks.copy_day_task"
COPY_FAILED_CALLBACK = "workers.tasks.on_copy_failure"
EVENT_TASK = "workers.tasks.deliver_event_task"
LAKE_TASK = "workers.tasks.lake_day_task"
POLL_TASK = "workers.tasks.poll_task"  # registered by the cron poller (workers/cron_config.py)
JANITOR_TASK = "workers.tasks.janitor_task"  # likewise
ERASE_DAY_TASK = "workers.tasks.erase_day_task"  # a deleted day's objects (the web may not delete: IAM)
# The only functions a relay worker resolves from a job: a job names its task by dotted path, and RQ would import
# and call whatever path a job hash written into Redis names (``os.system`` included). See RelayJob.
RELAY_TASKS = frozenset(
    {
        SYNC_TASK,
        SWEEP_TASK,
        RECONCILE_TASK,
        RECOVER_TASK,
        VERIFY_TASK,
        MIGRATE_LAYOUT_TASK,
        COPY_TASK,
        EVENT_TASK,
        LAKE_TASK,
        POLL_TASK,
        JANITOR_TASK,
        ERASE_DAY_TASK,
    }
)
RELAY_CALLBACKS = frozenset({COPY_FAILED_CALLBACK})
SERIALIZER = JSONSerializer  # also in the Procfile (--serializer) and workers/cron_config.py

_ACTIVE = {s.value.encode() for s in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED)}
ORPHAN_AFTER_SECONDS = 10  # a live worker marks a dequeued task started within milliseconds
ORPHAN_CONFIRM_SECONDS = 2  # ... so two sightings this far apart in that state mean its worker is gone
ENQUEUE_LOCK_SECONDS = 10
MIN_COPY_BYTES_PER_SECOND = 2 * MiB  # job timeout assumes at least this rate, plus a fixed margin
ASSUMED_SIZE_IF_UNKNOWN = 4 * 1024**3  # bigger than any day file seen; see copy_timeout
LAKE_RETRY_INTERVALS = (30, 120, 600, 1800)  # a load lost to S3 or the catalog being away is tried again
LAKE_TIMEOUT_SECONDS = 3600  # a day file read, converted and committed; far more than the largest takes


def sync_job_id(job_sid: str) -> str:
    return f"sync-{job_sid}"


def copy_job_id(job_sid: str, resource_type: str, day: str) -> str:
    return f"copy-{job_sid}-{resource_type}-{day}"


def lake_job_id(account_sid: str, resource_type: str, day: str, sha256: str) -> str:
    """One load per copy of a day: the same file copied again collapses into the queued load."""
    return f"lake-{account_sid}-{resource_type}-{day}-{sha256}"


def copy_timeout(size: int | None) -> int:
    """Seconds a copy may run: generous for the size, so RQ only kills copies that are really stuck.

    An unknown size (ListDay refused) is taken as ASSUMED_SIZE_IF_UNKNOWN: the copy learns the real size only
    once it runs, after RQ has fixed its timeout, and a stuck transfer is cut by socket timeouts anyway."""
    return 300 + math.ceil((ASSUMED_SIZE_IF_UNKNOWN if size is None else size) / MIN_COPY_BYTES_PER_SECOND)


class TaskRefused(Exception):
    """A job names a function that is not one of the relay's tasks (RelayJob.refusal says which and why)."""


class RelayJob(Job):
    """An RQ job that only ever resolves the relay's own tasks and callbacks (RELAY_TASKS, RELAY_CALLBACKS).

    Why here, on the job: RQ imports a job's function and callbacks by the dotted names stored in its hash, at the
    moment it needs them (``Job.func``, ``Job.failure_callback``...: running it, failing it, cleaning up after a
    dead worker). Checking those names before each import covers every path that resolves one, whichever worker
    or registry code reaches it. The names are read from the job's JSON data without importing anything. The
    worker (workers/inprocess_worker.py) asks ``refusal`` before running a job and fails a refused one without
    calling anything; the properties below are the backstop for RQ's other paths, and ``send_webhooks`` sends
    nothing (RQ's registry cleanup fails an abandoned job and posts its webhooks without asking ``refusal``)."""

    TASKS: frozenset[str] = RELAY_TASKS
    CALLBACKS: frozenset[str] = RELAY_CALLBACKS

    def refusal(self) -> str | None:
        """Why this job must not run (None: it may). Never imports the names it checks."""
        try:
            func_name, instance = self.func_name, self.instance
        except DeserializationError:
            return "task refused: its data is not a JSON task"
        if instance is not None or not isinstance(func_name, str) or func_name not in self.TASKS:
            return f"task refused: {str(func_name)[:200]!r} is not one of the relay's tasks"
        names = (self._success_callback_name, self._failure_callback_name, self._stopped_callback_name)
        for name in names:
            if name and name not in self.CALLBACKS:
                return f"task refused: callback {name[:200]!r} is not one of the relay's callbacks"
        if self.webhooks:  # RQ would POST the job to these URLs; the relay never sets any
            return "task refused: it carries webhooks"
        return None

    def _checked(self) -> None:
        reason = self.refusal()
        if reason is not None:
            raise TaskRefused(reason)

    @property
    def func(self) -> Any:
        self._checked()
        return super().func

    @property
    def success_callback(self) -> Any:
        self._checked()
        return super().success_callback

    @property
    def failure_callback(self) -> Any:
        self._checked()
        return super().failure_callback

    @property
    def stopped_callback(self) -> Any:
        self._checked()
        return super().stopped_callback

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: the relay never sets RQ webhooks, so any a job carries were written by someone else."""
        log.warning("refused to send the webhooks of job %s", self.id)


class JSONQueue(Queue):
    """An RQ queue whose tasks are JSON (see the module docstring); RQ's own default is pickle."""

    job_class = RelayJob

    def __init__(self, name: str = "default", *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("serializer", SERIALIZER)
        super().__init__(name, *args, **kwargs)


class Enqueuer:
    def __init__(self, connection: redis.Redis, locks: LockStore, copy_retry_intervals: Sequence[int]) -> None:
        self.connection = connection
        self.locks = locks  # owns the orphan-sighting and enqueue-lock keys
        self.control = JSONQueue(CONTROL_QUEUE, connection=connection)
        self.copy = JSONQueue(COPY_QUEUE, connection=connection)
        self.lake = JSONQueue(LAKE_QUEUE, connection=connection)
        self.copy_retry_intervals = list(copy_retry_intervals)

    def _enqueue_unique(self, queue: Queue, func: str, args: tuple[Any, ...], job_id: str, **opts: Any) -> bool:
        """True if this call queued the task; False if an identical one is already queued or running."""
        # Fast path for the steady state (duplicate webhooks, repeated polls): one HGET instead of building,
        # serialising and discarding an RQ Job. A status changing right after this read is indistinguishable
        # from the caller arriving a moment earlier; anything else takes the atomic unique enqueue below.
        if self._still_pending(queue, job_id):
            return False
        for _ in range(2):
            try:
                queue.enqueue(func, *args, job_id=job_id, unique=True, **opts)
                return True
            except DuplicateJobError:
                if not self.connection.exists(Job.key_for(job_id)):
                    continue  # it just ended and was cleaned up (a sync's result_ttl is 0): try again
                if self._still_pending(queue, job_id):
                    return False
                return self._replace(queue, func, args, job_id, **opts)
        return False

    def _still_pending(self, queue: Queue, job_id: str) -> bool:
        """The task is queued, scheduled, deferred or running, and will run or is running."""
        status = self.connection.hget(Job.key_for(job_id), "status")
        if status not in _ACTIVE:
            return False
        return not (status == b"queued" and self._orphaned(queue, job_id))

    def _orphaned(self, queue: Queue, job_id: str) -> bool:
        """A 'queued' task in no queue list: its worker died between dequeuing it and starting it, so RQ will
        never run it (and, kept, it would make every later enqueue of this id look like a duplicate).

        A live worker passes through that state too, for the milliseconds between popping a task and marking it
        started; so a task is called orphaned only when it is older than ORPHAN_AFTER_SECONDS *and* was already
        seen in that state ORPHAN_CONFIRM_SECONDS earlier (a first sighting is only recorded; the next enqueue
        attempt, at the latest the poller's, confirms it)."""
        raw = self.connection.hget(Job.key_for(job_id), "enqueued_at")
        if not raw:
            return False
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        age = (clock.system_utc_now() - utcparse(text).replace(tzinfo=UTC)).total_seconds()
        if age < ORPHAN_AFTER_SECONDS:
            return False
        intermediate = IntermediateQueue.get_intermediate_queue_key(queue.key)
        if any(self.connection.lpos(key, job_id) is not None for key in (queue.key, intermediate)):
            return False
        now = clock.system_now()  # RQ's bookkeeping runs on the host's clock (enqueued_at above), never moved
        first_seen = self.locks.orphan_first_seen(job_id, text, now)
        if first_seen is None or now - first_seen < ORPHAN_CONFIRM_SECONDS:
            return False
        log.warning("task %s is marked queued but is in no queue (worker died after dequeuing): replacing", job_id)
        return True

    def _replace(self, queue: Queue, func: str, args: tuple[Any, ...], job_id: str, **opts: Any) -> bool:
        """Replace an ended (or orphaned) task under a short lock: two callers must not both delete-and-enqueue
        (the second delete could remove the first one's fresh task and run the same id twice)."""
        lock, owner = f"enqueue:{job_id}", uuid.uuid4().hex
        if not self.locks.acquire(lock, owner, ENQUEUE_LOCK_SECONDS):
            return False
        try:
            with contextlib.suppress(NoSuchJobError, InvalidJobOperation):
                Job.fetch(job_id, connection=self.connection, serializer=SERIALIZER).delete()
            queue.enqueue(func, *args, job_id=job_id, unique=True, **opts)
            return True
        except DuplicateJobError:
            return False
        finally:
            self.locks.release(lock, owner)  # only ours, if it expired and another caller took it

    @staticmethod
    def sync_key_prefix() -> str:
        """RQ's hash key of a sync task is this prefix + job_sid (read by the webhook's one-round-trip lookup)."""
        return Job.key_for(sync_job_id(""))

    @staticmethod
    def is_active(status: str) -> bool:
        return status.encode() in _ACTIVE

    def sync(self, job_sid: str) -> bool:
        return self._enqueue_unique(
            self.control,
            SYNC_TASK,
            (job_sid,),
            sync_job_id(job_sid),
            result_ttl=0,
            failure_ttl=24 * 3600,
            job_timeout=300,
            retry=Retry(max=3, interval=[5, 30, 120]),
        )

    def sweep(self, owner: str) -> bool:
        """Look at Twilio's day list for files nobody submitted here (a daily export's webhook asks for it)."""
        return self._enqueue_unique(
            self.control,
            SWEEP_TASK,
            (owner,),
            f"sweep-{owner.replace(':', '-')}",  # RQ ids: letters, digits, _ and - only
            result_ttl=0,
            failure_ttl=24 * 3600,
            job_timeout=300,
            retry=Retry(max=3, interval=[5, 30, 120]),
        )

    def reconcile(self, owner: str) -> bool:
        """Make a feed's coverage agree with an S3 listing of its keys (one task per feed: a poll with hundreds
        of feeds due only enqueues, and the workers list the bucket side by side)."""
        return self._enqueue_unique(
            self.control,
            RECONCILE_TASK,
            (owner,),
            f"reconcile-{owner.replace(':', '-')}",
            result_ttl=0,
            failure_ttl=24 * 3600,
            job_timeout=600,
        )

    def erase_day(self, owner: str, day: str) -> bool:
        """Delete a day's objects and check they are gone (``DELETE /api/days/...``: app/feeds/tombstones.py)."""
        return self._enqueue_unique(
            self.control,
            ERASE_DAY_TASK,
            (owner, day),
            f"erase-day-{owner.replace(':', '-')}-{day}",
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            job_timeout=300,
            retry=Retry(max=3, interval=[5, 30, 120]),
        )

    def recover(self) -> bool:
        """Rebuild the registry from Twilio's job lists (``relay recover``)."""
        return self._enqueue_unique(
            self.control, RECOVER_TASK, (), "recover", result_ttl=3600, failure_ttl=24 * 3600, job_timeout=600
        )

    def verify(self, args: tuple[str | None, str | None, str | None, str | None, bool], timeout: int) -> Job:
        """``relay verify`` on a worker (only the workers may read objects): (resource_type, account_sid, first,
        last, repair), on the copy queue (bandwidth bound, like the copies); each call its own task, whose report
        the caller waits for (``Job.latest_result``)."""
        return self.copy.enqueue(
            VERIFY_TASK,
            *args,
            job_id=f"verify-{uuid.uuid4().hex}",
            result_ttl=3600,
            failure_ttl=24 * 3600,
            job_timeout=timeout,
        )

    def migrate_layout(self, template: str, account_sid: str | None, delete_old: bool, timeout: int) -> Job:
        """``relay migrate-layout`` on a worker (only the workers may read and copy objects), on the copy queue;
        its report is the task's result, which the caller waits for."""
        return self.copy.enqueue(
            MIGRATE_LAYOUT_TASK,
            template,
            account_sid,
            delete_old,
            job_id=f"migrate-layout-{uuid.uuid4().hex}",
            result_ttl=3600,
            failure_ttl=24 * 3600,
            job_timeout=timeout,
        )

    def copy_day(self, job_sid: str, resource_type: str, day: str, size: int | None, create_date: str | None) -> bool:
        return self._enqueue_unique(
            self.copy,
            COPY_TASK,
            (job_sid, resource_type, day, size, create_date),
            copy_job_id(job_sid, resource_type, day),
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            job_timeout=copy_timeout(size),
            retry=Retry(max=len(self.copy_retry_intervals), interval=self.copy_retry_intervals),
            on_failure=Callback(COPY_FAILED_CALLBACK),
        )

    def event(self, event_id: str, body: str, retry_intervals: Sequence[int]) -> bool:
        """Deliver one outbound event (app/jobs/events.py) on the control queue, never the copy queue; every retry
        sends the same id and body (receivers deduplicate on the id)."""
        return self._enqueue_unique(
            self.control,
            EVENT_TASK,
            (event_id, body),
            f"event-{event_id}",
            result_ttl=3600,
            failure_ttl=7 * 24 * 3600,
            job_timeout=60,
            retry=Retry(max=len(retry_intervals), interval=list(retry_intervals)),
        )

    def lake_day(self, account_sid: str, resource_type: str, day: str, key: str, sha256: str, records: int) -> bool:
        """Load a verified copy of a day into the lake (``workers.tasks.lake_day_task``), on the lake's own queue."""
        return self._enqueue_unique(
            self.lake,
            LAKE_TASK,
            (account_sid, resource_type, day, key, sha256, records),
            lake_job_id(account_sid, resource_type, day, sha256),
            result_ttl=24 * 3600,
            failure_ttl=7 * 24 * 3600,
            job_timeout=LAKE_TIMEOUT_SECONDS,
            retry=Retry(max=len(LAKE_RETRY_INTERVALS), interval=list(LAKE_RETRY_INTERVALS)),
        )

    def depths(self) -> dict[str, int]:
        return {q.name: q.count for q in (self.control, self.copy, self.lake)}
