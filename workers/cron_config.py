"""Schedule for ``rq cron workers/cron_config.py`` (the Procfile's ``poller`` process; run one replica).

The intervals come from the environment so tests and the demo can poll every second.
"""

import os

from rq import cron

from app.queueing import CONTROL_QUEUE
from workers.tasks import janitor, poll

POLL_INTERVAL = int(os.environ.get("POLL_INTERVAL_SECONDS", "60"))
JANITOR_INTERVAL = int(os.environ.get("JANITOR_INTERVAL_SECONDS", "3600"))

cron.register(poll, CONTROL_QUEUE, interval=POLL_INTERVAL, job_timeout=300, result_ttl=60)
cron.register(janitor, CONTROL_QUEUE, interval=JANITOR_INTERVAL, job_timeout=900, result_ttl=60)
