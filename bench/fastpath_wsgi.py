"""The web app with the *proposed* duplicate-webhook fast path, for side-by-side measurement only.

    gunicorn --config deploy/gunicorn.conf.py bench.fastpath_wsgi:app

Not used by the service. ``bench.webhook_intake --variants`` serves this next to the real ``app.wsgi:app``
so the proposal in bench/README.md ("Hot spots") is measured in the same run as what ships.

The proposal, for app/queueing.py: ``Enqueuer.sync`` first reads the status of ``sync-<sid>`` (one HGET)
and answers "already queued" when the job is queued, started, deferred or scheduled, which is exactly when
``_enqueue_unique`` would have answered False after five more round trips (MULTI/SADD/EXEC registering the
queue, the unique-enqueue EVALSHA, HGETALL of the existing job, HGET of its status) and building and
serialising an RQ Job it then throws away. Anything else (no job, or one that ended) takes the unchanged
path, so the result is the same; a status change between the read and the answer is indistinguishable
from the webhook arriving a moment earlier.
"""

from __future__ import annotations

from rq.job import Job

from app import create_app
from app.queueing import Enqueuer, sync_job_id

_ACTIVE = frozenset({b"queued", b"started", b"deferred", b"scheduled"})
_unchanged_sync = Enqueuer.sync


def _sync_with_fast_path(self: Enqueuer, job_sid: str) -> bool:
    status = self.connection.hget(Job.key_for(sync_job_id(job_sid)), "status")
    if status in _ACTIVE:
        return False
    return _unchanged_sync(self, job_sid)


Enqueuer.sync = _sync_with_fast_path  # type: ignore[method-assign]
app = create_app()
