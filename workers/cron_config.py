"""Schedule for ``rq cron workers/cron_config.py`` (the Procfile's ``poller`` process; run one replica).

Intervals come from the validated settings (POLL_INTERVAL_SECONDS, JANITOR_INTERVAL_SECONDS): a bad value stops
the poller at start-up with a message naming the variable. Only those are read (``load_schedule``): the poller
holds no Twilio, AWS or admin credentials (see workers/cron_settings.py).
"""

from rq import cron

from app.config import load_schedule
from app.queueing import CONTROL_QUEUE, JSONQueue
from workers.tasks import janitor_task, poll_task

# RQ 3.0's CronJob.enqueue builds ``Queue(name, connection=...)`` with RQ's default serializer (pickle), which the
# JSON-only workers refuse to read (and must: see app/queueing.py). Its module-level ``Queue`` is swapped for the
# JSON queue so the poll and janitor tasks are JSON like every other task (tests/integration/test_queueing.py).
cron.Queue = JSONQueue  # type: ignore[misc]

_poll_seconds, _janitor_seconds = load_schedule()

cron.register(poll_task, CONTROL_QUEUE, interval=_poll_seconds, job_timeout=300, result_ttl=60)
cron.register(janitor_task, CONTROL_QUEUE, interval=_janitor_seconds, job_timeout=900, result_ttl=60)
