"""Settings module for ``rq worker -c workers.rq_settings`` and ``rq cron -c workers.rq_settings``.

Gives RQ the same Redis URL and JSON logging (secrets scrubbed) as the web process.
"""

import os

from app.logs import logging_dict_config

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
DICT_CONFIG = logging_dict_config({"rq": {"handlers": [], "propagate": True}})
