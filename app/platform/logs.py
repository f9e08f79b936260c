"""JSON-lines logging for web, workers and gunicorn, with ids where they apply and secrets scrubbed.

One scrubber for every process (gunicorn's master and workers, ``rq worker``, ``rq cron``, the CLI): every secret
the environment gives the process (``secret_values``: the secret settings, REDIS_URL's password, the accounts
file's tokens) and every secret it learns later (``add_secrets``: discovered subaccounts' tokens) is replaced
wherever it appears in a line, in the forms a library or a URL would carry it too (``secret_forms``: URL-encoded,
base64 as in an HTTP Basic ``sid:token`` header). Webhook tokens (``token=...`` in any URL) and presigned-URL
signatures are masked whatever they are, so even a library that logs a URL cannot leak one.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")
_SIGNATURE_IN_URL = re.compile(r"(X-Amz-(?:Signature|Security-Token|Credential)=)[^&\s\"']+", re.IGNORECASE)
MIN_SECRET_LENGTH = 8
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_MAX_DEPTH = 8  # nested extras deeper than this are logged as their (scrubbed) str()


_RUNTIME_SECRETS: set[str] = set()  # learnt after start-up (discovered subaccounts' tokens): scrubbed everywhere


def add_secrets(*values: str) -> None:
    """Secrets a process learns while running; every formatter scrubs them from then on."""
    _RUNTIME_SECRETS.update(v for v in values if v)


# Secret settings of the environment contract (README "Configuration"); REDIS_URL's password and the accounts file
# (TWILIO_ACCOUNTS_FILE) are read by secret_values too.
SECRET_SETTINGS = (
    "TWILIO_AUTH_TOKEN",
    "TWILIO_AUTH_TOKEN_SECONDARY",
    "TWILIO_API_KEY_SECRET",
    "ADMIN_TOKEN",
    "CONSOLE_TOKEN",
    "CONSOLE_SECRET_KEY",
    "NOTIFY_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
ACCOUNT_FILE_SECRETS = ("auth_token", "auth_token_secondary", "api_key_secret")


def secret_values(env: Mapping[str, str]) -> tuple[str, ...]:
    """Every secret the environment gives a process, read before (and whatever) its settings are validated: a
    process that refuses its configuration still scrubs them from the refusal's logs. An unreadable accounts file
    gives none (the settings refuse it, without echoing it)."""
    found = [env.get(name, "").strip() for name in SECRET_SETTINGS]
    found += [v.removeprefix("whsec_") for v in found if v.startswith("whsec_")]  # NOTIFY_SECRET's key alone
    with contextlib.suppress(ValueError):
        found.append(urlsplit(env.get("REDIS_URL", "")).password or "")
    path = env.get("TWILIO_ACCOUNTS_FILE", "").strip()
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                entries = json.load(fh)
        except (OSError, ValueError):
            entries = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict):
                found += [v for k, v in entry.items() if k in ACCOUNT_FILE_SECRETS and isinstance(v, str)]
    return tuple(dict.fromkeys(v for v in found if v))


@functools.lru_cache(maxsize=1024)
def secret_forms(secret: str) -> tuple[str, ...]:
    """``secret`` and the text that stands for it in other encodings, longest first: URL-encoded (path and
    form), and base64 (standard and URL-safe) wherever it sits inside a longer encoded value, e.g. the token in
    an HTTP Basic ``base64(sid:token)``: base64 maps 3 bytes to 4 characters, so for each of the 3 offsets the
    characters that depend only on the secret's bytes are the same in every encoding that contains it there."""
    raw = secret.encode()
    whole = base64.b64encode(raw).decode()
    forms = {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        whole,
        base64.urlsafe_b64encode(raw).decode(),
    }
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode().rstrip("=")
        head = (0, 2, 3)[offset]  # characters that also hold bits of the bytes before the secret
        tail = 1 if (offset + len(raw)) % 3 else 0  # ... and of the bytes after it
        core = encoded[head : len(encoded) - tail]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in (*secrets, *_RUNTIME_SECRETS):
        if len(secret) >= MIN_SECRET_LENGTH:  # a 1-char "secret" would shred every message
            for form in secret_forms(secret):
                text = text.replace(form, "[redacted]")
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


def logging_dict_config(extra_loggers: dict[str, Any] | None = None) -> dict[str, Any]:
    """dictConfig for processes configured before our settings load (gunicorn, rq): JSON to stdout, every secret
    of the environment scrubbed (``secret_values``)."""
    from app.platform.config.env import log_level

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "app.platform.logs.JsonFormatter", "secrets": list(secret_values(os.environ))}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        "root": {"handlers": ["stdout"], "level": log_level(os.environ)},
        "loggers": {**QUIET_LOGGERS, **(extra_loggers or {})},
    }
