"""Settings module for ``rq worker -c workers.rq_settings`` and ``rq cron -c workers.rq_settings``.

Gives RQ the same Redis URL and JSON logging (secrets scrubbed) as the web process.
"""

import os

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

_SECRETS = [
    os.environ.get(name, "")
    for name in ("TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_SECONDARY", "TWILIO_API_KEY_SECRET", "ADMIN_TOKEN")
]

DICT_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.logs.JsonFormatter", "secrets": [s for s in _SECRETS if s]}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"handlers": ["stdout"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"rq": {"handlers": [], "propagate": True}, "twilio.http_client": {"level": "WARNING"}},
}
