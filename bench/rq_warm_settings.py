"""``rq worker --config`` module: the proposed preload *plus* clients built before the fork (bench only).

Like bench/rq_preload_settings.py, and it also builds the process's services (Settings, Redis clients,
the Twilio client) and the S3 sink (a boto3 client: botocore's service model parsing is the costly part)
once in the long-lived worker process, so a forked work horse inherits them instead of building them for
every task. Nothing is connected yet when rq forks: redis-py's pools reset themselves in a child (they
check the pid), and the boto3/requests pools are still empty, so no socket is shared across processes.
The change to ship would be these calls in workers/rq_settings.py (or a small rq Worker subclass).
"""

import workers.tasks
from app.context import worker_services
from workers.rq_settings import *  # noqa: F403  (the same REDIS_URL and logging as shipped)

worker_services()
workers.tasks.sink()
