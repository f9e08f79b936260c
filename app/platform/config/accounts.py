"""The Twilio side: the API base URL, the primary account's credentials, and many accounts (TWILIO_ACCOUNTS_FILE,
discovery of subaccounts)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from app.platform.config.env import env_base_url, env_choice, env_int, env_str
from app.platform.config.s3 import check_account_field
from app.platform.config.settings import ACCOUNT_SID_RE, API_KEY_SID_RE, AccountSettings, AccountSpec, ConfigError
from app.platform.labels import label_key, looks_like_sid


def bulkexports_base_url(env: Mapping[str, str]) -> str:
    return env_base_url(env, "TWILIO_BULKEXPORTS_BASE_URL", "https://bulkexports.twilio.com")


def twilio_credentials(env: Mapping[str, str]) -> tuple[str, str | None, str | None, str | None]:
    """(account SID, auth token, API key SID, API key secret): an auth token, or an API key, or both."""
    account_sid = env_str(env, "TWILIO_ACCOUNT_SID", required=True) or ""
    if not ACCOUNT_SID_RE.fullmatch(account_sid):
        raise ConfigError("TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits")
    auth_token = env_str(env, "TWILIO_AUTH_TOKEN")
    key_sid = env_str(env, "TWILIO_API_KEY_SID")
    key_secret = env_str(env, "TWILIO_API_KEY_SECRET")
    if bool(key_sid) != bool(key_secret):
        raise ConfigError("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET must be set together")
    if key_sid and not API_KEY_SID_RE.fullmatch(key_sid):
        raise ConfigError("TWILIO_API_KEY_SID must look like SK followed by 32 hex digits")
    if not auth_token and not key_sid:
        raise ConfigError("TWILIO_AUTH_TOKEN is required (or TWILIO_API_KEY_SID + TWILIO_API_KEY_SECRET)")
    return account_sid, auth_token, key_sid, key_secret


def load_account_settings(env: Mapping[str, str], key_template: str | None = None) -> AccountSettings:
    """TWILIO_ACCOUNTS_FILE (JSON list of {sid, auth_token | api_key_sid + api_key_secret, label?, parent_sid?,
    auth_token_secondary?}), TWILIO_DISCOVER_SUBACCOUNTS, ACCOUNTS_REFRESH_SECONDS, TWILIO_API_BASE_URL.

    With more than one account (or discovery) S3_KEY_TEMPLATE must contain the field {account_sid} (a field, as
    ``format`` parses it: ``{{account_sid}}`` is literal text, the same for every account): two accounts' days
    must never share a key."""
    path = env_str(env, "TWILIO_ACCOUNTS_FILE")
    listed = _account_file(path) if path else ()
    discover = env_choice(env, "TWILIO_DISCOVER_SUBACCOUNTS", "false", ("false", "true")) == "true"
    primary = env_str(env, "TWILIO_ACCOUNT_SID")
    served = {a.sid for a in listed} | ({primary} if primary else set())  # the file's accounts and TWILIO_*'s
    if discover or len(served) > 1:
        check_account_field(key_template or "")
    return AccountSettings(
        listed=listed,
        discover_subaccounts=discover,
        refresh_seconds=env_int(env, "ACCOUNTS_REFRESH_SECONDS", 600, minimum=10),
        api_base_url=env_base_url(env, "TWILIO_API_BASE_URL", "https://api.twilio.com"),
    )


def _account_file(path: str) -> tuple[AccountSpec, ...]:
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"TWILIO_ACCOUNTS_FILE {path!r} is not readable JSON: {type(exc).__name__}") from None
    if not isinstance(raw, list) or not raw:
        raise ConfigError("TWILIO_ACCOUNTS_FILE must hold a non-empty JSON list of accounts")
    specs = tuple(_account_spec(item, n) for n, item in enumerate(raw))
    sids, labels = [a.sid for a in specs], [label_key(a.label) for a in specs if a.label]
    if len(set(sids)) != len(sids) or len(set(labels)) != len(labels):
        raise ConfigError(
            "TWILIO_ACCOUNTS_FILE lists an account SID or label twice (labels differing only in case, '.', '_' or "
            "'-' are the same label)"
        )
    return specs


def _account_spec(item: object, n: int) -> AccountSpec:
    where = f"TWILIO_ACCOUNTS_FILE entry {n}"
    known = {"sid", "label", "auth_token", "auth_token_secondary", "api_key_sid", "api_key_secret", "parent_sid"}
    if not isinstance(item, dict) or set(item) - known or not all(isinstance(v, str) for v in item.values()):
        raise ConfigError(f"{where}: an object of strings with the fields {', '.join(sorted(known))}")
    sid, parent = item.get("sid", ""), item.get("parent_sid")
    if not ACCOUNT_SID_RE.fullmatch(sid) or (parent is not None and not ACCOUNT_SID_RE.fullmatch(parent)):
        raise ConfigError(f"{where}: sid (and parent_sid) must look like AC followed by 32 hex digits")
    key_sid, key_secret = item.get("api_key_sid"), item.get("api_key_secret")
    if bool(key_sid) != bool(key_secret) or (key_sid and not API_KEY_SID_RE.fullmatch(key_sid)):
        raise ConfigError(f"{where}: api_key_sid (SK...) and api_key_secret go together")
    if not item.get("auth_token") and not key_sid:
        raise ConfigError(f"{where}: an auth_token or an API key is required")
    label = item.get("label", "")
    if label and not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", label):
        raise ConfigError(f"{where}: label must be 1-40 letters, digits, '.', '_' or '-'")
    if label and (looks_like_sid(label) or not label_key(label)):
        raise ConfigError(f"{where}: label must not look like an account SID and needs a letter or digit")
    return AccountSpec(
        sid, label, item.get("auth_token"), item.get("auth_token_secondary"), key_sid, key_secret, parent
    )


def account_secrets(accounts: AccountSettings) -> list[str]:
    return [s for a in accounts.listed for s in (a.auth_token, a.auth_token_secondary, a.api_key_secret) if s]
