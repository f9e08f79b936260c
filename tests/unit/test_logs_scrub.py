"""The log scrubber sees every string before JSON encoding: secrets with quotes, backslashes or non-ASCII included.

Before the fix the scrubber ran over the encoded line, where ``"`` had become ``\\"``, ``\\`` ``\\\\`` and ``é``
``\\u00e9``, so such a secret was written out (escaped, but trivially recoverable).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]
NASTY_SECRETS = [
    'quote"in-the-middle-123',
    "back\\slash\\secret-456",
    "non-ascii-sécret-ünïcode-789",
    'all"of\\them-é\u2028-and-a-tab\t-012',
]


def _encoded_forms(secret: str) -> list[str]:
    """The secret itself and every way json.dumps may write it (ASCII-escaped or not), without the quotes."""
    return [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]


def _format(secret: str, **record_fields: object) -> str:
    record = logging.makeLogRecord({"name": "t", "levelno": logging.INFO, "levelname": "INFO", **record_fields})
    return JsonFormatter([secret]).format(record)


def _assert_clean(line: str, secret: str) -> dict:
    for form in _encoded_forms(secret):
        assert form not in line, f"secret leaked as {form!r}: {line}"
    return json.loads(line)


@pytest.mark.parametrize("secret", NASTY_SECRETS)
def test_secret_in_message_and_args_is_scrubbed(secret: str) -> None:
    line = _format(secret, msg=f"token is {secret} and arg %s", args=(f"<{secret}>",))
    data = _assert_clean(line, secret)
    assert data["msg"] == "token is [redacted] and arg <[redacted]>"


@pytest.mark.parametrize("secret", NASTY_SECRETS)
def test_secret_in_extra_fields_nested_and_in_keys_is_scrubbed(secret: str) -> None:
    extra = {"detail": {"headers": [f"Bearer {secret}"], secret: 1}, "obj": Path(f"/x/{secret}")}
    line = _format(secret, msg="m", **extra)
    data = _assert_clean(line, secret)
    assert data["detail"] == {"headers": ["Bearer [redacted]"], "[redacted]": 1}
    assert data["obj"] == "/x/[redacted]"


@pytest.mark.parametrize("secret", NASTY_SECRETS)
def test_secret_in_exception_text_is_scrubbed(secret: str) -> None:
    try:
        raise RuntimeError(f"could not authenticate with {secret!r} / {secret}")
    except RuntimeError:
        exc_info = sys.exc_info()
    line = _format(secret, msg="failed", exc_info=exc_info)
    data = _assert_clean(line, secret)
    assert "RuntimeError: could not authenticate with" in data["exc"] and "[redacted]" in data["exc"]


def test_webhook_token_and_presigned_signature_still_masked() -> None:
    line = _format("unused-secret-value", msg="GET /hooks/bulkexport?token=abc-DEF_123&x=1 X-Amz-Signature=ff00")
    data = json.loads(line)
    assert data["msg"] == "GET /hooks/bulkexport?token=[redacted]&x=1 X-Amz-Signature=[redacted]"


@pytest.mark.parametrize("secret", NASTY_SECRETS)
def test_logging_dict_config_of_gunicorn_and_rq_scrubs_such_secrets(secret: str) -> None:
    """The real start-up path of gunicorn and rq (logging_dict_config reads the secrets from the environment),
    in a fresh interpreter, writing to its real stdout."""
    script = (
        "import logging, logging.config, os\n"
        "from app.logs import logging_dict_config\n"
        "logging.config.dictConfig(logging_dict_config())\n"
        "s = os.environ['ADMIN_TOKEN']\n"
        "logging.getLogger('rq.worker').info('admin %s', s, extra={'auth': {'token': s}})\n"
        "try:\n"
        "    raise ValueError(s)\n"
        "except ValueError:\n"
        "    logging.getLogger('gunicorn.error').exception('boom')\n"
    )
    env = {**os.environ, "ADMIN_TOKEN": secret, "LOG_LEVEL": "INFO", "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout + result.stderr
    first, second = (_assert_clean(line, secret) for line in lines)
    assert first["msg"] == "admin [redacted]" and first["auth"] == {"token": "[redacted]"}
    assert second["exc"].endswith("ValueError: [redacted]")
