"""JSON-lines logging for web, workers and gunicorn, with ids where they apply and secrets scrubbed.

Secrets (auth tokens, API key secret, admin token) are replaced wherever they appear in a message, and webhook
tokens (``token=...`` in any URL) are masked, so even a library that logs a URL cannot leak one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")
_SIGNATURE_IN_URL = re.compile(r"(X-Amz-(?:Signature|Security-Token|Credential)=)[^&\s\"']+", re.IGNORECASE)
MIN_SECRET_LENGTH = 8
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_MAX_DEPTH = 8  # nested extras deeper than this are logged as their (scrubbed) str()


_RUNTIME_SECRETS: set[str] = set()  # learnt after start-up (discovered subaccounts' tokens): scrubbed everywhere


def add_secrets(*values: str) -> None:
    """Secrets a process learns while running; every formatter scrubs them from then on."""
    _RUNTIME_SECRETS.update(v for v in values if v)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in (*secrets, *_RUNTIME_SECRETS):
        if len(secret) >= MIN_SECRET_LENGTH:  # a 1-char "secret" would shred every message
            text = text.replace(secret, "[redacted]")
    text = _TOKEN_IN_URL.sub(r"\1[redacted]", text)
    return _SIGNATURE_IN_URL.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line. Every string is scrubbed *before* encoding: JSON escapes ``"``, ``\\`` and non-ASCII,
        so a secret holding one of them would no longer match once encoded."""
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(self._clean(data))

    def _clean(self, value: Any, depth: int = 0) -> Any:
        """``value`` with every string (keys included) scrubbed; anything not JSON-native becomes its str()."""
        if isinstance(value, str):
            return scrub(value, self.secrets)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if depth < _MAX_DEPTH and isinstance(value, dict):
            return {self._clean(str(k)): self._clean(v, depth + 1) for k, v in value.items()}
        if depth < _MAX_DEPTH and isinstance(value, (list, tuple, set, frozenset)):
            return [self._clean(v, depth + 1) for v in value]
        return scrub(str(value), self.secrets)


def configure_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Route the root logger (and so Flask, RQ and gunicorn's loggers) to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("gunicorn.error", "gunicorn.access", "rq.worker", "rq.scheduler", "rq.cron"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True


# Libraries that log request headers (AWS session tokens, presigned URLs) at DEBUG/INFO: never below WARNING.
QUIET_LOGGERS = {
    name: {"level": "WARNING"} for name in ("twilio.http_client", "botocore", "boto3", "urllib3", "s3transfer")
}
SECRET_ENV_VARS = ("TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN_SECONDARY", "TWILIO_API_KEY_SECRET", "ADMIN_TOKEN")


def logging_dict_config(extra_loggers: dict[str, Any] | None = None) -> dict[str, Any]:
    """dictConfig for processes configured before our settings load (gunicorn, rq): JSON to stdout, scrubbed."""
    import os

    from app.config import log_level

    secrets = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.logs.JsonFormatter", "secrets": [s for s in secrets if s]}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["stdout"], "level": log_level(os.environ)},
        "loggers": {**QUIET_LOGGERS, **(extra_loggers or {})},
    }
