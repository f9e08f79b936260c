"""TWILIO_ACCOUNTS_FILE and the other account settings (app/platform/config/, issue 14): every bad file or
combination is
a ConfigError naming the variable and echoing no secret; the file's credentials reach the log scrubber and never a
repr; the directory discovers at once but refreshes a stale list in the background. The files are written to a
temporary folder; discovery is a plain function here."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from app.platform.config import AccountSpec, ConfigError, load_settings
from app.platform.logs import JsonFormatter
from app.twilio.accounts import AccountDirectory
from devstack.procs import wait_until

PARENT = "AC" + "a" * 32
SUB_A, SUB_B = "AC" + "b" * 32, "AC" + "c" * 32
KEY_SID = "SK" + "d" * 32
TOKEN_A, TOKEN_B = "token-of-subaccount-a-0123456789ab", "token-of-subaccount-b-0123456789ab"
SECONDARY_A, KEY_SECRET_B = "secondary-token-of-a-0123456789ab", "api-key-secret-of-b-0123456789ab"
FILE_SECRETS = (TOKEN_A, SECONDARY_A, KEY_SECRET_B)
PER_ACCOUNT = "{prefix}{resource_type}/account={account_sid}/day={day}/{resource_type}-{day}.json.gz"
BASE = {
    "TWILIO_ACCOUNT_SID": PARENT,
    "TWILIO_AUTH_TOKEN": "parent-auth-token-0123456789abcdef",
    "S3_BUCKET": "b",
    "S3_KEY_TEMPLATE": PER_ACCOUNT,
}
GOOD = [
    {"sid": SUB_A, "label": "team-a", "auth_token": TOKEN_A, "auth_token_secondary": SECONDARY_A, "parent_sid": PARENT},
    {"sid": SUB_B, "label": "team-b", "api_key_sid": KEY_SID, "api_key_secret": KEY_SECRET_B},
]


def accounts_file(tmp_path: Path, content: Any) -> str:
    path = tmp_path / "accounts.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def refused(env: dict[str, str], variable: str) -> str:
    """The ConfigError's message: it names ``variable`` and holds none of the file's secrets."""
    with pytest.raises(ConfigError) as exc:
        load_settings(env)
    message = str(exc.value)
    assert variable in message, message
    assert not [s for s in FILE_SECRETS if s in message], message
    return message


def test_a_good_file_lists_every_account_with_its_credentials_and_family(tmp_path):
    settings = load_settings(BASE | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, GOOD)})
    a, b = settings.accounts.listed
    assert (a.sid, a.label, a.auth_token, a.auth_token_secondary, a.parent_sid) == (
        SUB_A,
        "team-a",
        TOKEN_A,
        SECONDARY_A,
        PARENT,
    )
    assert (b.sid, b.auth_token, b.api_key_sid, b.api_key_secret, b.parent_sid) == (
        SUB_B,
        None,
        KEY_SID,
        KEY_SECRET_B,
        None,
    )
    assert not settings.accounts.discover_subaccounts and settings.accounts.refresh_seconds == 600
    directory = AccountDirectory(settings)
    assert {x.sid: x.family for x in directory.all()} == {PARENT: PARENT, SUB_A: PARENT, SUB_B: SUB_B}
    assert directory.resolve("team-b").api_key_secret == KEY_SECRET_B


@pytest.mark.parametrize(
    "content",
    [
        '[{"sid": "' + SUB_A + '", "auth_token": "' + TOKEN_A + '",]',  # trailing comma: not JSON
        '{"sid": "' + SUB_A + '", "auth_token": "' + TOKEN_A + '"',  # cut short
        "\ufeff" + json.dumps(GOOD)[:-1],
    ],
    ids=["trailing-comma", "truncated", "bom-and-truncated"],
)
def test_a_file_that_is_not_json_is_refused_without_echoing_it(tmp_path, content):
    message = refused(BASE | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, content)}, "TWILIO_ACCOUNTS_FILE")
    assert "JSON" in message


def test_a_missing_file_is_refused(tmp_path):
    refused(BASE | {"TWILIO_ACCOUNTS_FILE": str(tmp_path / "nowhere.json")}, "TWILIO_ACCOUNTS_FILE")


@pytest.mark.parametrize("content", [[], {}, {"accounts": GOOD}, "null", [GOOD[0], "AC" + "e" * 32]])
def test_anything_but_a_non_empty_list_of_objects_is_refused(tmp_path, content):
    refused(BASE | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, content)}, "TWILIO_ACCOUNTS_FILE")


@pytest.mark.parametrize(
    "accounts",
    [
        [GOOD[0], GOOD[1] | {"sid": SUB_A}],  # the same SID twice
        [GOOD[0], GOOD[1] | {"label": "team-a"}],  # the same label twice
    ],
    ids=["duplicate-sid", "duplicate-label"],
)
def test_a_sid_or_label_listed_twice_is_refused(tmp_path, accounts):
    message = refused(BASE | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, accounts)}, "TWILIO_ACCOUNTS_FILE")
    assert "twice" in message


@pytest.mark.parametrize(
    ("entry", "names"),
    [
        ({"sid": SUB_B, "api_key_sid": KEY_SID}, "api_key_secret"),  # a key without its secret
        ({"sid": SUB_B, "api_key_secret": KEY_SECRET_B, "auth_token": TOKEN_B}, "api_key_sid"),  # a secret alone
        ({"sid": SUB_B, "api_key_sid": "SKnothex", "api_key_secret": KEY_SECRET_B}, "api_key_sid"),
        ({"sid": SUB_B}, "auth_token"),  # no credentials at all
        ({"sid": SUB_B, "label": "team-b"}, "auth_token"),
        ({"sid": SUB_B, "auth_token": ""}, "auth_token"),  # an empty token is no token
        ({"sid": "ACnothex", "auth_token": TOKEN_B}, "sid"),
        ({"auth_token": TOKEN_B}, "sid"),
        ({"sid": SUB_B, "auth_token": TOKEN_B, "parent_sid": "parent"}, "parent_sid"),
        ({"sid": SUB_B, "auth_token": TOKEN_B, "label": "team b!"}, "label"),
        ({"sid": SUB_B, "auth_token": TOKEN_B, "password": KEY_SECRET_B}, "auth_token"),  # unknown field
        ({"sid": SUB_B, "auth_token": 1234567890}, "auth_token"),  # not a string
    ],
    ids=[
        "key-without-secret",
        "secret-without-key",
        "bad-key-sid",
        "no-credentials",
        "label-only",
        "empty-token",
        "bad-sid",
        "no-sid",
        "bad-parent",
        "bad-label",
        "unknown-field",
        "not-a-string",
    ],
)
def test_a_bad_entry_is_refused_naming_the_file_the_entry_and_the_field(tmp_path, entry, names):
    env = BASE | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, [GOOD[0], entry])}
    message = refused(env, "TWILIO_ACCOUNTS_FILE")
    assert "entry 1" in message and names in message


@pytest.mark.parametrize(
    "template",
    [
        None,
        "{prefix}{resource_type}/day={day}/{resource_type}-{day}.json.gz",
        # {{account_sid}} is the literal text "{account_sid}", the same for every account: no field
        "{prefix}{resource_type}/account={{account_sid}}/day={day}/{resource_type}-{day}.json.gz",
        "{prefix}{resource_type}/day={day}/{resource_type}-{day}.json.gz?{{{{account_sid}}}}",
    ],
)
@pytest.mark.parametrize("how", ["file of two", "file of one besides TWILIO_ACCOUNT_SID", "discovery"])
def test_several_accounts_need_account_sid_in_the_key_template(tmp_path, template, how):
    """Two accounts' days must never share a key: S3_KEY_TEMPLATE (or its default) without {account_sid} is
    refused as soon as more than one account can be served."""
    env = {k: v for k, v in BASE.items() if k != "S3_KEY_TEMPLATE"} | (
        {"S3_KEY_TEMPLATE": template} if template else {}
    )
    if how == "discovery":
        env["TWILIO_DISCOVER_SUBACCOUNTS"] = "true"
    else:
        env["TWILIO_ACCOUNTS_FILE"] = accounts_file(tmp_path, GOOD if how == "file of two" else GOOD[:1])
    assert "{account_sid}" in refused(env, "S3_KEY_TEMPLATE")
    assert load_settings(env | {"S3_KEY_TEMPLATE": PER_ACCOUNT})  # with it: accepted


def test_one_account_keeps_the_default_layout(tmp_path):
    """A single account (no file and no discovery, or a file naming TWILIO_ACCOUNT_SID itself) keeps the
    single-account default: existing deployments start unchanged."""
    env = {k: v for k, v in BASE.items() if k != "S3_KEY_TEMPLATE"}
    assert load_settings(env).s3_key_template is None
    itself = [{"sid": PARENT, "label": "main", "auth_token": TOKEN_A}]
    settings = load_settings(env | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, itself)})
    assert [a.sid for a in AccountDirectory(settings).all()] == [PARENT]


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"TWILIO_DISCOVER_SUBACCOUNTS": "yes"}, "TWILIO_DISCOVER_SUBACCOUNTS"),
        ({"ACCOUNTS_REFRESH_SECONDS": "5"}, "ACCOUNTS_REFRESH_SECONDS"),
        ({"ACCOUNTS_REFRESH_SECONDS": "often"}, "ACCOUNTS_REFRESH_SECONDS"),
        ({"TWILIO_API_BASE_URL": "http://api.twilio.com"}, "TWILIO_API_BASE_URL"),  # credentials in clear
        ({"TWILIO_API_BASE_URL": "https://user:pw@api.twilio.com"}, "TWILIO_API_BASE_URL"),
    ],
)
def test_bad_discovery_settings_are_refused(change, variable):
    refused(BASE | change, variable)


def test_discovery_settings_are_read(tmp_path):
    env = BASE | {
        "TWILIO_DISCOVER_SUBACCOUNTS": "TRUE",
        "ACCOUNTS_REFRESH_SECONDS": "120",
        "TWILIO_API_BASE_URL": "http://127.0.0.1:8080/",  # loopback: the sandbox
    }
    accounts = load_settings(env).accounts
    assert (accounts.discover_subaccounts, accounts.refresh_seconds, accounts.api_base_url) == (
        True,
        120,
        "http://127.0.0.1:8080",
    )


def test_the_files_secrets_are_scrubbed_from_logs(tmp_path):
    settings = load_settings(BASE | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, GOOD)})
    assert set(FILE_SECRETS) <= set(settings.secrets)
    record = logging.makeLogRecord(
        {"msg": "calling Twilio with %s", "args": (f"{TOKEN_A} {SECONDARY_A}",), "extra_field": KEY_SECRET_B}
    )
    line = JsonFormatter(settings.secrets).format(record)
    assert "[redacted]" in line
    assert not [s for s in FILE_SECRETS if s in line], line


def test_no_repr_shows_a_secret(tmp_path):
    settings = load_settings(BASE | {"TWILIO_ACCOUNTS_FILE": accounts_file(tmp_path, GOOD)})
    spec = settings.accounts.listed[0]
    assert isinstance(spec, AccountSpec) and SUB_A in repr(spec) and "team-a" in repr(spec)
    shown = [repr(spec), repr(settings.accounts.listed[1]), repr(settings.accounts), repr(settings), str(spec)]
    shown += [repr(a) for a in AccountDirectory(settings).all()]
    assert not [s for s in (*FILE_SECRETS, BASE["TWILIO_AUTH_TOKEN"]) if any(s in text for text in shown)], shown


def test_get_waits_for_the_first_discovery_only_and_refreshes_a_stale_list_in_the_background(tmp_path):
    """The webhook's lookup: the first call discovers; later, a stale list answers at once while a background
    refresh learns a rotated token (the Accounts API is never awaited on the webhook for a known account)."""
    settings = load_settings(BASE | {"TWILIO_DISCOVER_SUBACCOUNTS": "true"})
    tokens, calls, release = [TOKEN_A], [], threading.Event()

    def discover(parent: Any) -> list[dict[str, Any]]:
        calls.append(parent.sid)
        if len(calls) > 1:
            assert release.wait(10)
        return [{"sid": SUB_A, "auth_token": tokens[-1], "friendly_name": "team-a", "status": "active"}]

    directory = AccountDirectory(settings, discover)
    assert directory.get(SUB_A).auth_tokens[0] == TOKEN_A and len(calls) == 1  # the first call waited for it
    tokens.append(TOKEN_B)  # rotated at Twilio
    directory._refreshed -= settings.accounts.refresh_seconds  # the list is now stale
    assert directory.get(SUB_A).auth_tokens[0] == TOKEN_A  # answered from memory while the refresh runs
    release.set()
    wait_until(lambda: directory.get(SUB_A).auth_tokens[0] == TOKEN_B, timeout=10, what="the background refresh")
    assert len(calls) == 2
