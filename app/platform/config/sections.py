"""The other sections of the settings: the web's tokens, the console's sessions, continuous sync (declared feeds
and the planner's pacing), outbound events."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from app.platform.config.env import env_choice, env_int, env_intervals, env_str, is_loopback_host
from app.platform.config.settings import (
    RESOURCE_TYPES,
    ConfigError,
    ConsoleSettings,
    FeedSettings,
    FeedSpec,
    NotifySettings,
)
from app.platform.days import EARLIEST_DAY


def web_tokens(env: Mapping[str, str]) -> dict[str, Any]:
    """ADMIN_TOKEN (the API; required by the web only) and CONSOLE_TOKEN (the console's sign-in, optional)."""
    out: dict[str, Any] = {}
    for name in ("ADMIN_TOKEN", "CONSOLE_TOKEN"):
        value = env_str(env, name)
        if value is not None and len(value) < 16:
            raise ConfigError(f"{name} must be at least 16 characters")
        out[name.lower()] = value
    return out


def load_console_settings(env: Mapping[str, str], public_base_url: str | None) -> ConsoleSettings:
    """CONSOLE_SECRET_KEY (at least 32 characters; unset: a random key made once and kept in Redis, see
    app/web/console/sessions.py), CONSOLE_SESSION_HOURS (1-720, default 12) and CONSOLE_COOKIE_SECURE (``auto``: Secure
    unless PUBLIC_BASE_URL is plain http, which only a loopback one may be; ``true``; ``false``, refused with an
    https PUBLIC_BASE_URL). The key is never echoed."""
    key = env_str(env, "CONSOLE_SECRET_KEY")
    if key is not None and len(key) < 32:
        raise ConfigError("CONSOLE_SECRET_KEY must be at least 32 characters (e.g. 64 random hex digits)")
    hours = env_int(env, "CONSOLE_SESSION_HOURS", 12, minimum=1)
    if hours > 720:
        raise ConfigError(f"CONSOLE_SESSION_HOURS must be <= 720 (30 days; got {hours})")
    secure = env_choice(env, "CONSOLE_COOKIE_SECURE", "auto", ("auto", "true", "false"))
    https = urlsplit(public_base_url or "").scheme == "https"
    if secure == "false" and https:
        raise ConfigError("CONSOLE_COOKIE_SECURE=false with an https PUBLIC_BASE_URL: the console is served over https")
    if secure == "auto":
        secure = "false" if public_base_url and not https else "true"
    return ConsoleSettings(key, hours, secure == "true")


def _feed_specs(env: Mapping[str, str]) -> tuple[FeedSpec, ...]:
    """SYNC_FEEDS=Messages:2025-01-01,Calls:2025-06-01:2025-12-31,Conferences:2025-01-01::90 (resource type, since,
    optional until, optional retain_days: a fourth part, after an empty or given until)."""
    raw = env_str(env, "SYNC_FEEDS") or ""
    specs: dict[str, FeedSpec] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        rt, _, dates = item.partition(":")
        since, _, until = dates.partition(":")
        until, _, retain = until.partition(":")
        if rt not in RESOURCE_TYPES:
            raise ConfigError(f"SYNC_FEEDS: unknown resource type {rt!r} (one of {', '.join(RESOURCE_TYPES)})")
        if rt in specs:
            raise ConfigError(f"SYNC_FEEDS names {rt} twice")
        for value in filter(None, (since, until)):
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) or not _real_day(value):
                raise ConfigError(f"SYNC_FEEDS: {rt} has an invalid day {value!r} (YYYY-MM-DD)")
        if not since or (until and until < since):
            raise ConfigError(f"SYNC_FEEDS: {rt} needs since[:until] with since <= until (got {dates!r})")
        if since < EARLIEST_DAY.isoformat():
            raise ConfigError(f"SYNC_FEEDS: {rt} starts before {EARLIEST_DAY} (Twilio has no records that old)")
        if retain and (not retain.isdigit() or int(retain) < 1):
            raise ConfigError(f"SYNC_FEEDS: {rt} has an invalid retain_days {retain!r} (a whole number of days >= 1)")
        specs[rt] = FeedSpec(rt, since, until or None, int(retain) if retain else None)
    return tuple(specs.values())


def _real_day(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def load_sync_settings(env: Mapping[str, str], twilio_base_url: str = "") -> FeedSettings:
    if env_str(env, "RELAY_CLOCK_OFFSET_FILE") and not is_loopback_host(urlsplit(twilio_base_url).hostname):
        # app/platform/clock.py: the tests' way to move the relay's calendar with the sandbox's; never against real
        # Twilio
        raise ConfigError(
            "RELAY_CLOCK_OFFSET_FILE is for local stacks only: TWILIO_BULKEXPORTS_BASE_URL must be loopback"
        )
    return FeedSettings(
        feeds=_feed_specs(env),
        quota_reserve_days=env_int(env, "FEED_QUOTA_RESERVE_DAYS", 0),
        submit_delay_hours=env_int(env, "FEED_SUBMIT_DELAY_HOURS", 0),
        max_attempts=env_int(env, "FEED_MAX_ATTEMPTS", 5, minimum=1),
        retry_base_seconds=env_int(env, "FEED_RETRY_BASE_SECONDS", 3600, minimum=1),
        daily_grace_hours=env_int(env, "DAILY_EXPORT_GRACE_HOURS", 6),
        reconcile_hours=env_int(env, "RECONCILE_INTERVAL_HOURS", 24, minimum=1),
        sweep_seconds=env_int(env, "SWEEP_INTERVAL_SECONDS", 300, minimum=1),
        refetch_vanished=env_choice(env, "REFETCH_VANISHED", "auto", ("auto", "never")),
    )


def load_notify_settings(env: Mapping[str, str]) -> NotifySettings:
    """NOTIFY_URL (https, or http to loopback only, like PUBLIC_BASE_URL), NOTIFY_SECRET (``whsec_`` + base64 of
    24-64 bytes, the Standard Webhooks format; needs NOTIFY_URL), NOTIFY_RETRY_INTERVALS. The secret is never
    echoed. The URL alone is accepted: only the processes that send events (the workers) need the secret."""
    url = env_str(env, "NOTIFY_URL")
    if url is not None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError("NOTIFY_URL is not a valid URL") from None  # not echoed: its query may hold a token
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ConfigError(f"NOTIFY_URL must be an http(s) URL without fragment (scheme {parts.scheme!r})")
        if parts.username is not None or parts.password is not None:
            raise ConfigError("NOTIFY_URL must not carry credentials (sign with NOTIFY_SECRET instead)")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ConfigError(f"NOTIFY_URL must be https (plain http to loopback only; host {parts.hostname!r})")
    secret = env_str(env, "NOTIFY_SECRET")
    if secret is not None:
        if url is None:
            raise ConfigError("NOTIFY_SECRET is set but NOTIFY_URL is not")
        _check_whsec(secret)
    intervals = env_intervals(env, "NOTIFY_RETRY_INTERVALS", "10,60,300,1800,3600,14400")
    return NotifySettings(url, secret, intervals)


def _check_whsec(secret: str) -> None:
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith("whsec_") or not 24 <= len(key) <= 64:
        raise ConfigError("NOTIFY_SECRET must be whsec_ followed by the base64 of 24 to 64 random bytes")
