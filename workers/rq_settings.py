"""Settings module for ``rq worker -c workers.rq_settings`` and ``rq cron -c workers.rq_settings``.

Gives RQ the same Redis URL and JSON logging (secrets scrubbed) as the web process, validates the configuration
at start-up, and builds the long-lived pieces once, before the first task: imports of boto3/botocore/twilio,
botocore's S3 service model, the services and the S3 sink. The Procfile's worker runs tasks in process
(``workers.inprocess_worker``), so every task reuses them and their kept-alive connections; were RQ's forking
``Worker`` used instead, each work horse would at least inherit them (measured in bench/fanout.py: 370 ms of
overhead per day without this warm-up, 66 ms with it; in process -2 to 10 ms). Nothing is connected yet here: redis-py's
pools reset themselves in a forked child (they check the pid) and the boto3/requests pools are still empty.

Building the sink probes the S3 store (``app.bucket.probe``; cached in Redis, so replicas starting together probe
once): a store that would corrupt what the relay writes stops the worker here, with one line naming the
capability and the setting (``S3_OBJECT_TAGS``). A probe that cannot run (S3 unreachable) does not stop it: the
first task that needs the sink probes again.
"""

import os

from app.bucket import probe as store_probe
from app.platform.logs import logging_dict_config
from app.services import worker_services
from workers import tasks

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DICT_CONFIG = logging_dict_config({"rq": {"handlers": [], "propagate": True}})

worker_services()
try:
    tasks.sink()  # an S3 outage does not stop the worker: tasks.store_path probes again at the next task
except store_probe.StoreRefused as refused:
    raise SystemExit(f"relay worker refuses to start: {refused}") from None
