"""The log scrubber sees every string before JSON encoding: secrets with quotes, backslashes or non-ASCII included;
and every secret of the environment, in its URL-encoded and base64 forms too, in every process's logging set-up.

Before the fix the scrubber ran over the encoded line, where ``"`` had become ``\\"``, ``\\`` ``\\\\`` and ``é``
``\\u00e9``, so such a secret was written out (escaped, but trivially recoverable).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from app.platform.logs import SECRET_SETTINGS, JsonFormatter, secret_values

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
        "from app.platform.logs import logging_dict_config\n"
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


# -- every secret, in every form ------------------------------------------------------------------------------------

TOKEN = "0123456789abcdef0123456789abcdef"


def _forms_an_attacker_reads(user: str, secret: str) -> list[str]:
    """How a secret may reach a log line besides itself: URL-encoded, base64 alone, HTTP Basic base64(user:secret)."""
    basic = f"{user}:{secret}".encode()
    return [
        quote(secret, safe=""),
        quote_plus(secret),
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode(),
        base64.b64encode(basic).decode(),
        base64.urlsafe_b64encode(basic).decode(),
    ]


@pytest.mark.parametrize("secret", [TOKEN, *NASTY_SECRETS, "whsec_" + base64.b64encode(bytes(range(32))).decode()])
@pytest.mark.parametrize("user", ["", "A", "AC", "AC" + "1" * 32, "SK" + "f" * 32])
def test_url_encoded_and_base64_forms_are_scrubbed(secret: str, user: str) -> None:
    forms = _forms_an_attacker_reads(user, secret)
    line = _format(secret, msg="sent " + " | ".join(forms))
    for form in [*forms, secret]:
        assert form not in line, f"{form!r} leaked: {line}"
    # what is left of a Basic header is the user's part and at most one character around the secret
    assert json.loads(line)["msg"].count("[redacted]") == len(forms)


def test_secret_values_are_every_secret_setting_redis_password_and_the_accounts_file(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    file_secrets = {"auth_token": "file-auth-token-1", "auth_token_secondary": "file-old-2", "api_key_secret": "k-3"}
    accounts.write_text(json.dumps([{"sid": "AC" + "2" * 32, "label": "not-a-secret", **file_secrets}]))
    env = {name: f"value-of-{name}" for name in SECRET_SETTINGS} | {
        "NOTIFY_SECRET": "whsec_c2VjcmV0LWtleS1ieXRlcy0xMjM0NTY3ODkw",
        "REDIS_URL": "redis://default:redis-password-4@127.0.0.1:6379/0",
        "TWILIO_ACCOUNTS_FILE": str(accounts),
        "S3_BUCKET": "not-a-secret-either",
    }
    found = set(secret_values(env))
    expected = {f"value-of-{name}" for name in SECRET_SETTINGS if name != "NOTIFY_SECRET"}
    expected |= {
        env["NOTIFY_SECRET"],
        "c2VjcmV0LWtleS1ieXRlcy0xMjM0NTY3ODkw",
        "redis-password-4",
        *file_secrets.values(),
    }
    assert found == expected
    accounts.write_text("{not json")
    assert secret_values(env)  # an unreadable file gives none of its own, the rest still counts


@pytest.mark.parametrize("name", ["CONSOLE_TOKEN", "NOTIFY_SECRET", "AWS_SECRET_ACCESS_KEY", "TWILIO_ACCOUNTS_FILE"])
def test_logging_dict_config_scrubs_every_secret_of_the_environment(name: str, tmp_path: Path) -> None:
    """gunicorn's master and rq's processes configure logging before any settings load: the secrets they must
    scrub include the console token, the events secret, AWS's and the accounts file's, in every form."""
    secret = "known-secret-" + name.lower() + "-0123456789"
    if name == "TWILIO_ACCOUNTS_FILE":
        accounts = tmp_path / "accounts.json"
        accounts.write_text(json.dumps([{"sid": "AC" + "3" * 32, "auth_token": secret}]))
        value = str(accounts)
    else:
        value = secret
    forms = [secret, *_forms_an_attacker_reads("AC" + "3" * 32, secret)]
    script = (
        "import logging, logging.config, sys\n"
        "from app.platform.logs import logging_dict_config\n"
        "logging.config.dictConfig(logging_dict_config())\n"
        "logging.getLogger('gunicorn.error').info('config: %s', sys.argv[1:])\n"
    )
    env = {**os.environ, name: value, "LOG_LEVEL": "INFO"}
    result = subprocess.run(
        [sys.executable, "-c", script, *forms],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.count("[redacted]") == len(forms), result.stdout
    for form in forms:
        assert form not in result.stdout
