"""``rq worker --config`` module with the *proposed* preload, for side-by-side measurement only.

Not used by the service. ``bench.fanout`` starts a second pair of workers with this instead of
``workers.rq_settings`` to measure the proposal in bench/README.md ("Hot spots"): import the task module
(and with it app.*, boto3, botocore, twilio, requests) once in the long-lived worker process, before it
forks, so that each forked work horse inherits the loaded modules instead of importing them again for
every single task. The proposed change to ship is the one import line below, added to
workers/rq_settings.py (which the Procfile's worker and poller lines already load with ``--config``).
"""

import workers.tasks  # noqa: F401  (the proposal: preload before rq forks work horses)
from workers.rq_settings import *  # noqa: F403  (the same REDIS_URL and logging as shipped)
