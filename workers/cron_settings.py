"""Settings module for ``rq cron -c workers.cron_settings`` (the Procfile's ``poller``): Redis and logging only.

The poller only enqueues the poll and janitor tasks on a schedule; the workers run them. So unlike
``workers.rq_settings`` it loads no full settings and warms up no services: it needs ``REDIS_URL`` and the two
intervals (``app.platform.config.load_schedule``), no Twilio credentials, no AWS identity and no admin token — its
Kubernetes Secret and compose secrets file hold REDIS_URL alone, and its ServiceAccount has no IAM role.
"""

import os

from app.platform.logs import logging_dict_config

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DICT_CONFIG = logging_dict_config({"rq": {"handlers": [], "propagate": True}})
