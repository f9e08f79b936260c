"""Loading the settings: every section read and validated once, at start-up (``load_settings``); the poller's
two intervals (``load_schedule``); what only the web needs (``require_web_settings``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from app.platform.config.accounts import (
    account_secrets,
    bulkexports_base_url,
    load_account_settings,
    twilio_credentials,
)
from app.platform.config.download import download_allow_loopback, download_hosts
from app.platform.config.env import env_base_url, env_choice, env_int, env_intervals, env_str, log_level
from app.platform.config.lake import load_lake_settings
from app.platform.config.s3 import s3_settings
from app.platform.config.sections import load_console_settings, load_notify_settings, load_sync_settings, web_tokens
from app.platform.config.settings import ConfigError, Settings
from app.platform.logs import secret_values


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise ConfigError naming the first bad variable."""
    env = os.environ if env is None else env
    account_sid, auth_token, key_sid, key_secret = twilio_credentials(env)
    secondary = env_str(env, "TWILIO_AUTH_TOKEN_SECONDARY")
    signature_policy = env_choice(env, "WEBHOOK_SIGNATURE", "auto", ("auto", "if-present", "required"))
    if signature_policy == "required" and not auth_token:
        raise ConfigError("WEBHOOK_SIGNATURE=required needs TWILIO_AUTH_TOKEN (signatures are made with it)")
    s3 = s3_settings(env)
    tokens = web_tokens(env)
    public_base_url = env_base_url(env, "PUBLIC_BASE_URL") if env_str(env, "PUBLIC_BASE_URL") else None
    accounts = load_account_settings(env, s3["s3_key_template"])
    twilio_base_url = bulkexports_base_url(env)
    notify = load_notify_settings(env)
    console = load_console_settings(env, public_base_url)
    tokens_and_keys = (*tokens.values(), notify.secret, console.secret_key, *account_secrets(accounts))
    secrets = (auth_token, secondary, key_secret, *tokens_and_keys)
    lake = load_lake_settings(env, s3["s3_bucket"], s3["s3_prefix"])
    secrets += lake.secrets if lake else ()
    secrets += secret_values(env)  # the environment's other secrets (AWS, REDIS_URL's password): app/platform/logs.py
    return Settings(
        redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0") or "",
        twilio_account_sid=account_sid,
        twilio_auth_token=auth_token,
        twilio_auth_token_secondary=secondary,
        twilio_api_key_sid=key_sid,
        twilio_api_key_secret=key_secret,
        twilio_base_url=twilio_base_url,
        public_base_url=public_base_url,
        webhook_method=env_choice(env, "WEBHOOK_METHOD", "POST", ("POST", "GET")),
        webhook_signature=signature_policy,
        **s3,
        **tokens,
        poll_interval_seconds=_poll_interval(env),
        janitor_interval_seconds=_janitor_interval(env),
        webhook_max_body_bytes=env_int(env, "WEBHOOK_MAX_BODY_BYTES", 64 * 1024, minimum=1024),
        proxy_fix_hops=env_int(env, "PROXY_FIX_HOPS", 0),
        web_body_timeout_seconds=env_int(env, "WEB_BODY_TIMEOUT_SECONDS", 10, minimum=1),
        web_max_connections_per_client=env_int(env, "WEB_MAX_CONNECTIONS_PER_CLIENT", 100),
        log_level=log_level(env),
        job_retention_days=env_int(env, "JOB_RETENTION_DAYS", 30, minimum=1),
        daily_day_quota=env_int(env, "TWILIO_DAILY_DAY_QUOTA", 366, minimum=1),
        copy_retry_intervals=env_intervals(env, "COPY_RETRY_INTERVALS", "30,120,600,1800,3600"),
        download_host_allowlist=download_hosts(env),
        download_allow_loopback=download_allow_loopback(env, twilio_base_url),
        sync=load_sync_settings(env, twilio_base_url),
        accounts=accounts,
        notify=notify,
        console=console,
        secrets=tuple(dict.fromkeys(s for s in secrets if s)),
        lake=lake,
    )


def _poll_interval(env: Mapping[str, str]) -> int:
    return env_int(env, "POLL_INTERVAL_SECONDS", 60, minimum=1)


def _janitor_interval(env: Mapping[str, str]) -> int:
    return env_int(env, "JANITOR_INTERVAL_SECONDS", 3600, minimum=1)


def load_schedule(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(poll, janitor) intervals in seconds: all the poller (``rq cron``) reads. It only enqueues the tasks, the
    workers run them, so it needs no Twilio or AWS credentials and no admin token (its Secret: REDIS_URL)."""
    env = os.environ if env is None else env
    log_level(env)  # its logging is configured from it before this runs; a bad value must stop it too
    return _poll_interval(env), _janitor_interval(env)


def require_web_settings(settings: Settings) -> Settings:
    """What only the web process needs, checked when it starts: the admin API's bearer token."""
    if not settings.admin_token:
        raise ConfigError("ADMIN_TOKEN is required by the web process (the admin API) but not set")
    return settings
