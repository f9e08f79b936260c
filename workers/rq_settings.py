"""Settings module for ``rq worker -c workers.rq_settings`` and ``rq cron -c workers.rq_settings``.

Gives RQ the same Redis URL and JSON logging (secrets scrubbed) as the web process, and warms the worker up:
RQ forks a work horse per task, so everything built here, once, in the long-lived parent is inherited by every
task instead of being rebuilt per task (imports of boto3/botocore/twilio, parsing botocore's S3 service model,
the Twilio client). Nothing is connected yet at fork time: redis-py's pools reset themselves in a child (they
check the pid) and the boto3/requests pools are still empty, so no socket is shared between processes.
Measured in bench/fanout.py: per-day overhead 370 ms -> 66 ms. It also validates the configuration at start-up.
"""

import os

from app.context import worker_services
from app.logs import logging_dict_config
from workers import tasks

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DICT_CONFIG = logging_dict_config({"rq": {"handlers": [], "propagate": True}})

worker_services()
tasks.sink()
