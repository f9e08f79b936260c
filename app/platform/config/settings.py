"""The settings as values: ``Settings`` and its sections (frozen dataclasses), ``ConfigError``, and the defaults and
patterns more than one module needs (the S3 prefix's default has its one home here)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # app/platform/config/lake.py imports ConfigError from here
    from app.platform.config.lake import LakeSettings

# \A...\Z, not ^...$: "$" also matches before a trailing newline.
ACCOUNT_SID_RE = re.compile(r"\AAC[0-9a-fA-F]{32}\Z")
API_KEY_SID_RE = re.compile(r"\ASK[0-9a-fA-F]{32}\Z")
RESOURCE_TYPES = ("Messages", "Calls", "Conferences", "Participants")
# S3_PREFIX unset: keys start at the bucket's root (README, Configuration). workers.sink.SinkSettings defaults to
# it too: one default.
DEFAULT_S3_PREFIX = ""
# Where day files go unless S3_KEY_TEMPLATE says otherwise (workers/sink/settings.py writes them; the lifecycle
# rule, app/feeds/lifecycle_rule.py, derives its prefixes from it)
DEFAULT_KEY_TEMPLATE = "{prefix}{resource_type}/day={day}/{resource_type}-{day}.json.gz"
DEFAULT_SINGLE_PUT_MAX_MIB = 16  # S3_SINGLE_PUT_MAX_MIB; measured: bench/README.md, "Single PUT or multipart"

# Where Twilio's presigned day-file links point: S3 (virtual-hosted and path style, regional, legacy dash-region
# and dual-stack names). A "*" matches within one DNS label, never across a dot.
DEFAULT_DOWNLOAD_HOSTS = (
    "s3.amazonaws.com",
    "*.s3.amazonaws.com",
    "s3.*.amazonaws.com",
    "*.s3.*.amazonaws.com",
    "s3-*.amazonaws.com",
    "*.s3-*.amazonaws.com",
    "s3.dualstack.*.amazonaws.com",
    "*.s3.dualstack.*.amazonaws.com",
)


@dataclass(frozen=True)
class FeedSpec:
    """One feed declared in SYNC_FEEDS: keep ``resource_type`` complete from ``since`` (to ``until``)."""

    resource_type: str
    since: str
    until: str | None = None
    retain_days: int | None = None  # days older than today - retain_days are outside the feed (``expired``)


@dataclass(frozen=True)
class FeedSettings:
    """Continuous sync (app/feeds/declared.py, app/feeds/planner.py): declared feeds and how the planner spends the
    quota."""

    feeds: tuple[FeedSpec, ...] = ()
    quota_reserve_days: int = 0  # of TWILIO_DAILY_DAY_QUOTA, left for manual submissions
    submit_delay_hours: int = 0  # after 00:00 UTC, wait this long before asking for the newest day
    max_attempts: int = 5  # custom jobs that fail a day before the day is `failed`
    retry_base_seconds: int = 3600  # a failed day is asked again after this, doubling each time
    daily_grace_hours: int = 6  # with daily exports on, wait this long for Twilio's own file
    reconcile_hours: int = 24  # coverage is checked against an S3 listing at start and this often
    sweep_seconds: int = 300  # ListDay is swept for days nobody submitted here this often
    # A copied day gone from S3 without a tombstone: "auto" fetches it again, "never" leaves it missing (owners
    # whose own lifecycle rules delete inside a feed's window: app/bucket/reconcile.py)
    refetch_vanished: str = "auto"


@dataclass(frozen=True)
class AccountSpec:
    """One Twilio account from TWILIO_ACCOUNTS_FILE (or the TWILIO_* settings): credentials never printed."""

    sid: str
    label: str = ""
    auth_token: str | None = field(default=None, repr=False)
    auth_token_secondary: str | None = field(default=None, repr=False)
    api_key_sid: str | None = None
    api_key_secret: str | None = field(default=None, repr=False)
    parent_sid: str | None = None  # the quota family (a parent and its subaccounts share one daily quota)


@dataclass(frozen=True)
class AccountSettings:
    """Many accounts (app/twilio/accounts.py): listed in a file mounted from a secret, and/or discovered from a
    parent."""

    listed: tuple[AccountSpec, ...] = ()
    discover_subaccounts: bool = False
    refresh_seconds: int = 600
    api_base_url: str = "https://api.twilio.com"  # the Accounts API (discovery)


@dataclass(frozen=True)
class NotifySettings:
    """Outbound events (app/jobs/events.py): where they are POSTed, the Standard Webhooks key, the retry schedule."""

    url: str | None = None
    secret: str | None = field(default=None, repr=False)  # whsec_<base64>; never logged
    retry_intervals: tuple[int, ...] = (10, 60, 300, 1800, 3600, 14400)


@dataclass(frozen=True)
class ConsoleSettings:
    """The console's sessions (app/web/console/sessions.py): the cookie's signing key, how long a sign-in lasts,
    whether the cookie is Secure. Decided here from configuration only, never from a request."""

    secret_key: str | None = field(default=None, repr=False)  # CONSOLE_SECRET_KEY; None: one kept in Redis
    session_hours: int = 12  # CONSOLE_SESSION_HOURS: from sign-in, however busy the session is
    cookie_secure: bool = True  # CONSOLE_COOKIE_SECURE (auto: off only for an http:// PUBLIC_BASE_URL)


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable and never echoes a secret."""


@dataclass(frozen=True)
class Settings:
    redis_url: str
    twilio_account_sid: str
    twilio_auth_token: str | None
    twilio_auth_token_secondary: str | None
    twilio_api_key_sid: str | None
    twilio_api_key_secret: str | None
    twilio_base_url: str
    public_base_url: str | None  # None: no webhooks, the poller finds every change (one poll interval later)
    webhook_method: str
    webhook_signature: str
    s3_bucket: str
    s3_prefix: str
    s3_key_template: str | None
    s3_sse: str | None
    s3_sse_kms_key_id: str | None
    s3_storage_class: str | None
    admin_token: str | None  # only the web needs it (see require_web_settings); worker and poller run without
    console_token: str | None = None  # CONSOLE_TOKEN: signs in to /console instead of ADMIN_TOKEN (app/web/console/)
    s3_single_put_max_mib: int = DEFAULT_SINGLE_PUT_MAX_MIB
    s3_object_tags: str = "auto"  # S3_OBJECT_TAGS: where the digest goes, by the store probe (app/bucket/probe.py)
    poll_interval_seconds: int = 60
    janitor_interval_seconds: int = 3600
    webhook_max_body_bytes: int = 64 * 1024
    proxy_fix_hops: int = 0
    web_body_timeout_seconds: int = 10  # a request body must arrive whole within this (app/web/client_limits.py)
    web_max_connections_per_client: int = 100  # per web worker and client address; 0: no cap (app/web/client_limits.py)
    log_level: str = "INFO"
    job_retention_days: int = 30
    daily_day_quota: int = 366
    copy_retry_intervals: tuple[int, ...] = (30, 120, 600, 1800, 3600)
    download_host_allowlist: tuple[str, ...] = DEFAULT_DOWNLOAD_HOSTS
    download_allow_loopback: bool = False
    sync: FeedSettings = field(default_factory=lambda: FeedSettings())
    accounts: AccountSettings = field(default_factory=lambda: AccountSettings())
    notify: NotifySettings = field(default_factory=lambda: NotifySettings())  # outbound events (app/jobs/events.py)
    console: ConsoleSettings = field(default_factory=lambda: ConsoleSettings())  # sessions of /console
    secrets: tuple[str, ...] = field(default=(), repr=False)
    lake: LakeSettings | None = None  # LAKE_*: the Iceberg tables of issue 23 (app/lake/); None: no lake

    @property
    def auth_tokens(self) -> tuple[str, ...]:
        """Tokens a webhook signature may be made with: primary first, then the one being rotated in/out."""
        return tuple(t for t in (self.twilio_auth_token, self.twilio_auth_token_secondary) if t)

    def __repr__(self) -> str:  # never print secrets, even by accident in a traceback
        return f"Settings(account={self.twilio_account_sid}, bucket={self.s3_bucket}, base={self.public_base_url})"
