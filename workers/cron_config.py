"""Schedule for ``rq cron workers/cron_config.py`` (the Procfile's ``poller`` process; run one replica).

Intervals come from the validated settings (POLL_INTERVAL_SECONDS, JANITOR_INTERVAL_SECONDS): a bad value stops
the poller at start-up with a message naming the variable.
"""

from rq import cron

from app.config import load_settings
from app.queueing import CONTROL_QUEUE
from workers.tasks import janitor, poll

_settings = load_settings()

cron.register(poll, CONTROL_QUEUE, interval=_settings.poll_interval_seconds, job_timeout=300, result_ttl=60)
cron.register(janitor, CONTROL_QUEUE, interval=_settings.janitor_interval_seconds, job_timeout=900, result_ttl=60)
