"""Schedule for ``rq cron workers/cron_config.py`` (the Procfile's ``poller`` process; run one replica).

Intervals come from the validated settings (POLL_INTERVAL_SECONDS, JANITOR_INTERVAL_SECONDS): a bad value stops
the poller at start-up with a message naming the variable. Only those are read (``load_schedule``): the poller
holds no Twilio, AWS or admin credentials (see workers/cron_settings.py).

Only the relay's own tasks are scheduled: each is checked against the allow-list the workers enforce
(``app.platform.queueing.RELAY_TASKS``), so a schedule naming anything else stops the poller at start-up instead of
queueing jobs that every worker would refuse.
"""

from collections.abc import Callable
from typing import Any

from rq import cron

from app.platform.config import load_schedule
from app.platform.queueing import CONTROL_QUEUE, RELAY_TASKS, JSONQueue
from workers.tasks import janitor_task, poll_task

# RQ 3.0's CronJob.enqueue builds ``Queue(name, connection=...)`` with RQ's default serializer (pickle), which the
# JSON-only workers refuse to read (and must: see app/platform/queueing.py). Its module-level ``Queue`` is swapped
# for the
# JSON queue so the poll and janitor tasks are JSON like every other task (tests/integration/test_queueing.py).
cron.Queue = JSONQueue  # type: ignore[misc]


def register_task(func: Callable[..., Any], **options: Any) -> None:
    """``cron.register`` on the control queue, for a relay task only (the name RQ will store and resolve)."""
    name = f"{func.__module__}.{func.__name__}"
    if name not in RELAY_TASKS:
        raise RuntimeError(f"{name} is not one of the relay's tasks (app.platform.queueing.RELAY_TASKS): not scheduled")
    cron.register(func, CONTROL_QUEUE, **options)


_poll_seconds, _janitor_seconds = load_schedule()

register_task(poll_task, interval=_poll_seconds, job_timeout=300, result_ttl=60)
register_task(janitor_task, interval=_janitor_seconds, job_timeout=900, result_ttl=60)
