"""Settings from the environment, validated once at start-up.

The variable names are a contract shared with the deploy files, the README and external checks. S3 endpoint,
credentials, region, CA bundle and checksum mode are *not* here: boto3 reads its own standard ``AWS_*``
variables (``AWS_ENDPOINT_URL_S3``, ``AWS_REQUEST_CHECKSUM_CALCULATION``, ``AWS_CA_BUNDLE``, ...), and we let it.
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.platform.days import EARLIEST_DAY
from app.platform.logs import secret_values
from app.twilio.labels import label_key, looks_like_sid

log = logging.getLogger(__name__)

# \A...\Z, not ^...$: "$" also matches before a trailing newline.
ACCOUNT_SID_RE = re.compile(r"\AAC[0-9a-fA-F]{32}\Z")
API_KEY_SID_RE = re.compile(r"\ASK[0-9a-fA-F]{32}\Z")
RESOURCE_TYPES = ("Messages", "Calls", "Conferences", "Participants")

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


@dataclass(frozen=True)
class SyncSettings:
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
    s3_single_put_max_mib: int = 16
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
    sync: SyncSettings = field(default_factory=lambda: SyncSettings())
    accounts: AccountSettings = field(default_factory=lambda: AccountSettings())
    notify: NotifySettings = field(default_factory=lambda: NotifySettings())  # outbound events (app/jobs/events.py)
    console: ConsoleSettings = field(default_factory=lambda: ConsoleSettings())  # sessions of /console
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def auth_tokens(self) -> tuple[str, ...]:
        """Tokens a webhook signature may be made with: primary first, then the one being rotated in/out."""
        return tuple(t for t in (self.twilio_auth_token, self.twilio_auth_token_secondary) if t)

    def __repr__(self) -> str:  # never print secrets, even by accident in a traceback
        return f"Settings(account={self.twilio_account_sid}, bucket={self.s3_bucket}, base={self.public_base_url})"


def _get(env: Mapping[str, str], name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = env.get(name, "").strip()
    if value:
        return value
    if required and default is None:
        raise ConfigError(f"{name} is required but not set")
    return default


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (_get(env, name, default) or default).strip()
    normalized = {c.lower(): c for c in choices}.get(value.lower())
    if normalized is None:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return normalized


def log_level(env: Mapping[str, str]) -> str:
    """LOG_LEVEL as logging wants it; also read by gunicorn's and RQ's logging setup, before settings load."""
    return _choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = _get(env, name, str(default)) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer (got {raw!r})") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum} (got {value})")
    return value


def _intervals(env: Mapping[str, str], name: str, default: str) -> tuple[int, ...]:
    raw = _get(env, name, default) or default
    try:
        values = tuple(int(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds, e.g. {default}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name} needs at least one non-negative number of seconds")
    return values


def _single_put_max(env: Mapping[str, str]) -> int:
    """Day files up to this many MiB are held in memory and written with one PutObject (see workers.s3_sink)."""
    value = _int(env, "S3_SINGLE_PUT_MAX_MIB", 16)  # measured: bench/README.md, "Single PUT or multipart"
    if value > 256:
        raise ConfigError(f"S3_SINGLE_PUT_MAX_MIB must be <= 256: each worker holds that much in memory (got {value})")
    return value


KEY_TEMPLATE_FIELDS = ("prefix", "resource_type", "day", "job_sid", "account_sid")


def key_template_fields(template: str) -> set[str]:
    """The replacement fields of a str.format template as ``format`` will fill them (not its text: ``{{day}}``
    is the literal text "{day}", no field); none if it does not parse."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:
        return set()


def _check_key_template(template: str) -> None:
    """Every (resource type, day) must get its own key, so only bare known fields are allowed.

    A format spec or conversion (``{day:.4}``, ``{day!r}``) or an attribute/index access (``{day[0]}``) can make
    different days render the same text (``{day:.4}`` is the year), and one day file would overwrite another.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"S3_KEY_TEMPLATE is not a valid template: {exc}") from None
    fields = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if conversion is not None or spec:
            raise ConfigError(f"S3_KEY_TEMPLATE: {{{name}}} may not carry a conversion or format spec")
        if name not in KEY_TEMPLATE_FIELDS:
            raise ConfigError(
                f"S3_KEY_TEMPLATE uses an unknown field {name!r} (allowed: {', '.join(KEY_TEMPLATE_FIELDS)})"
            )
        fields.add(name)
    if not {"day", "resource_type"} <= fields:
        raise ConfigError("S3_KEY_TEMPLATE must contain {resource_type} and {day}")


def check_key_template(template: str, several_accounts: bool) -> None:
    """S3_KEY_TEMPLATE's rules for any key template (``relay migrate-layout --to`` too): ConfigError unless valid,
    and, when several accounts are served, unless it contains {account_sid}."""
    _check_key_template(template)
    if several_accounts:
        _check_account_field(template)


def _check_account_field(template: str) -> None:
    if "account_sid" not in key_template_fields(template):
        raise ConfigError(
            "S3_KEY_TEMPLATE must contain {account_sid} when several Twilio accounts are served "
            "(e.g. {prefix}{resource_type}/account={account_sid}/day={day}/{resource_type}-{day}.json.gz)"
        )


def _base_url(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """An http(s) base URL; plain http only to this host (tests, the demo): credentials (Twilio's Basic auth)
    and webhook tokens would otherwise cross the network in clear."""
    raw = _get(env, name, default, required=True)
    assert raw is not None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ConfigError(f"{name} is not a valid URL (got {raw!r})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an http(s) URL without query or fragment (got {raw!r})")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{name} must not carry credentials")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(f"{name} must be https (plain http is accepted for loopback hosts only; got {raw!r})")
    return raw.rstrip("/")


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback address literal (127.0.0.0/8, ::1); no name is resolved here."""
    import ipaddress

    if not host:
        return False
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HOST_PATTERN_RE = re.compile(r"\A(?:[a-z0-9*](?:[a-z0-9*-]{0,61}[a-z0-9*])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def _download_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    """DOWNLOAD_HOST_ALLOWLIST: comma-separated host patterns (or IP literals) a day-file link may point at."""
    import ipaddress

    raw = _get(env, "DOWNLOAD_HOST_ALLOWLIST")
    if raw is None:
        return DEFAULT_DOWNLOAD_HOSTS
    patterns = []
    for item in (p.strip().lower().rstrip(".") for p in raw.split(",")):
        if not item:
            continue
        try:
            patterns.append(str(ipaddress.ip_address(item.strip("[]"))))
            continue
        except ValueError:
            pass
        labels = item.split(".")
        if not _HOST_PATTERN_RE.match(item) or any("*" in label for label in labels[-2:]):
            raise ConfigError(
                f"DOWNLOAD_HOST_ALLOWLIST: {item!r} is not a host pattern (the last two labels must be literal, "
                "e.g. *.s3.amazonaws.com)"
            )
        patterns.append(item)
    if not patterns:
        raise ConfigError("DOWNLOAD_HOST_ALLOWLIST is set but lists no host")
    return tuple(patterns)


def _download_allow_loopback(env: Mapping[str, str], twilio_base_url: str) -> bool:
    """A development switch: the sandbox serves day files over http on 127.0.0.1. Refused unless the Twilio API
    itself is on loopback (the sandbox), so a deployment that talks to the real Twilio can never turn it on."""
    allow = _choice(env, "DOWNLOAD_ALLOW_LOOPBACK", "false", ("false", "true")) == "true"
    if allow and not is_loopback_host(urlsplit(twilio_base_url).hostname):
        raise ConfigError(
            "DOWNLOAD_ALLOW_LOOPBACK=true is for local stacks only: TWILIO_BULKEXPORTS_BASE_URL must be loopback"
        )
    return allow


def _twilio_base_url(env: Mapping[str, str]) -> str:
    return _base_url(env, "TWILIO_BULKEXPORTS_BASE_URL", "https://bulkexports.twilio.com")


def download_policy_settings(env: Mapping[str, str] | None = None) -> tuple[tuple[str, ...], bool]:
    """(DOWNLOAD_HOST_ALLOWLIST, DOWNLOAD_ALLOW_LOOPBACK) validated as load_settings does,
    for app.platform.url_policy."""
    env = os.environ if env is None else env
    return _download_hosts(env), _download_allow_loopback(env, _twilio_base_url(env))


def _poll_interval(env: Mapping[str, str]) -> int:
    return _int(env, "POLL_INTERVAL_SECONDS", 60, minimum=1)


def _janitor_interval(env: Mapping[str, str]) -> int:
    return _int(env, "JANITOR_INTERVAL_SECONDS", 3600, minimum=1)


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


S3_ADDRESSING_STYLES = ("auto", "path", "virtual")


def _storage_class(env: Mapping[str, str]) -> str | None:
    """A typo here would fail every copy after hours of retries: check it against botocore's S3 model."""
    value = _get(env, "S3_STORAGE_CLASS")
    if value is None:
        return None
    import botocore.session

    known = botocore.session.get_session().get_service_model("s3").shape_for("StorageClass").enum
    if value not in known:
        raise ConfigError(f"S3_STORAGE_CLASS must be one of {', '.join(known)} (got {value!r})")
    return value


def _twilio_credentials(env: Mapping[str, str]) -> tuple[str, str | None, str | None, str | None]:
    """(account SID, auth token, API key SID, API key secret): an auth token, or an API key, or both."""
    account_sid = _get(env, "TWILIO_ACCOUNT_SID", required=True) or ""
    if not ACCOUNT_SID_RE.fullmatch(account_sid):
        raise ConfigError("TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits")
    auth_token = _get(env, "TWILIO_AUTH_TOKEN")
    key_sid = _get(env, "TWILIO_API_KEY_SID")
    key_secret = _get(env, "TWILIO_API_KEY_SECRET")
    if bool(key_sid) != bool(key_secret):
        raise ConfigError("TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET must be set together")
    if key_sid and not API_KEY_SID_RE.fullmatch(key_sid):
        raise ConfigError("TWILIO_API_KEY_SID must look like SK followed by 32 hex digits")
    if not auth_token and not key_sid:
        raise ConfigError("TWILIO_AUTH_TOKEN is required (or TWILIO_API_KEY_SID + TWILIO_API_KEY_SECRET)")
    return account_sid, auth_token, key_sid, key_secret


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise ConfigError naming the first bad variable."""
    env = os.environ if env is None else env
    account_sid, auth_token, key_sid, key_secret = _twilio_credentials(env)
    secondary = _get(env, "TWILIO_AUTH_TOKEN_SECONDARY")
    signature_policy = _choice(env, "WEBHOOK_SIGNATURE", "auto", ("auto", "if-present", "required"))
    if signature_policy == "required" and not auth_token:
        raise ConfigError("WEBHOOK_SIGNATURE=required needs TWILIO_AUTH_TOKEN (signatures are made with it)")
    s3 = _s3_settings(env)
    tokens = _web_tokens(env)
    public_base_url = _base_url(env, "PUBLIC_BASE_URL") if _get(env, "PUBLIC_BASE_URL") else None
    accounts = load_account_settings(env, s3["s3_key_template"])
    twilio_base_url = _twilio_base_url(env)
    notify = load_notify_settings(env)
    console = load_console_settings(env, public_base_url)
    tokens_and_keys = (*tokens.values(), notify.secret, console.secret_key, *_account_secrets(accounts))
    secrets = (auth_token, secondary, key_secret, *tokens_and_keys)
    secrets += secret_values(env)  # the environment's other secrets (AWS, REDIS_URL's password): app/platform/logs.py
    return Settings(
        redis_url=_get(env, "REDIS_URL", "redis://127.0.0.1:6379/0") or "",
        twilio_account_sid=account_sid,
        twilio_auth_token=auth_token,
        twilio_auth_token_secondary=secondary,
        twilio_api_key_sid=key_sid,
        twilio_api_key_secret=key_secret,
        twilio_base_url=twilio_base_url,
        public_base_url=public_base_url,
        webhook_method=_choice(env, "WEBHOOK_METHOD", "POST", ("POST", "GET")),
        webhook_signature=signature_policy,
        **s3,
        **tokens,
        poll_interval_seconds=_poll_interval(env),
        janitor_interval_seconds=_janitor_interval(env),
        webhook_max_body_bytes=_int(env, "WEBHOOK_MAX_BODY_BYTES", 64 * 1024, minimum=1024),
        proxy_fix_hops=_int(env, "PROXY_FIX_HOPS", 0),
        web_body_timeout_seconds=_int(env, "WEB_BODY_TIMEOUT_SECONDS", 10, minimum=1),
        web_max_connections_per_client=_int(env, "WEB_MAX_CONNECTIONS_PER_CLIENT", 100),
        log_level=log_level(env),
        job_retention_days=_int(env, "JOB_RETENTION_DAYS", 30, minimum=1),
        daily_day_quota=_int(env, "TWILIO_DAILY_DAY_QUOTA", 366, minimum=1),
        copy_retry_intervals=_intervals(env, "COPY_RETRY_INTERVALS", "30,120,600,1800,3600"),
        download_host_allowlist=_download_hosts(env),
        download_allow_loopback=_download_allow_loopback(env, twilio_base_url),
        sync=load_sync_settings(env, twilio_base_url),
        accounts=accounts,
        notify=notify,
        console=console,
        secrets=tuple(dict.fromkeys(s for s in secrets if s)),
    )


def _web_tokens(env: Mapping[str, str]) -> dict[str, Any]:
    """ADMIN_TOKEN (the API; required by the web only) and CONSOLE_TOKEN (the console's sign-in, optional)."""
    out: dict[str, Any] = {}
    for name in ("ADMIN_TOKEN", "CONSOLE_TOKEN"):
        value = _get(env, name)
        if value is not None and len(value) < 16:
            raise ConfigError(f"{name} must be at least 16 characters")
        out[name.lower()] = value
    return out


def load_console_settings(env: Mapping[str, str], public_base_url: str | None) -> ConsoleSettings:
    """CONSOLE_SECRET_KEY (at least 32 characters; unset: a random key made once and kept in Redis, see
    app/web/console/sessions.py), CONSOLE_SESSION_HOURS (1-720, default 12) and CONSOLE_COOKIE_SECURE (``auto``: Secure
    unless PUBLIC_BASE_URL is plain http, which only a loopback one may be; ``true``; ``false``, refused with an
    https PUBLIC_BASE_URL). The key is never echoed."""
    key = _get(env, "CONSOLE_SECRET_KEY")
    if key is not None and len(key) < 32:
        raise ConfigError("CONSOLE_SECRET_KEY must be at least 32 characters (e.g. 64 random hex digits)")
    hours = _int(env, "CONSOLE_SESSION_HOURS", 12, minimum=1)
    if hours > 720:
        raise ConfigError(f"CONSOLE_SESSION_HOURS must be <= 720 (30 days; got {hours})")
    secure = _choice(env, "CONSOLE_COOKIE_SECURE", "auto", ("auto", "true", "false"))
    https = urlsplit(public_base_url or "").scheme == "https"
    if secure == "false" and https:
        raise ConfigError("CONSOLE_COOKIE_SECURE=false with an https PUBLIC_BASE_URL: the console is served over https")
    if secure == "auto":
        secure = "false" if public_base_url and not https else "true"
    return ConsoleSettings(key, hours, secure == "true")


def _s3_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Bucket, prefix, key template, encryption, storage class and the single-PUT size (Settings fields)."""
    s3_prefix = _get(env, "S3_PREFIX", "") or ""
    if s3_prefix and not s3_prefix.endswith("/"):
        s3_prefix += "/"
    sse = _get(env, "S3_SSE")
    if sse is not None and sse not in ("AES256", "aws:kms"):
        raise ConfigError(f"S3_SSE must be AES256 or aws:kms (got {sse!r})")
    key_template = _get(env, "S3_KEY_TEMPLATE")
    if key_template is not None:
        _check_key_template(key_template)
    kms_key = _get(env, "S3_SSE_KMS_KEY_ID")
    if kms_key and sse != "aws:kms":
        raise ConfigError("S3_SSE_KMS_KEY_ID needs S3_SSE=aws:kms")
    # Read by make_s3_client (botocore takes it only from its config file); checked here so every process,
    # the web included, refuses a bad value at start-up.
    _choice(env, "AWS_S3_ADDRESSING_STYLE", "auto", S3_ADDRESSING_STYLES)
    return {
        "s3_bucket": _get(env, "S3_BUCKET", required=True) or "",
        "s3_prefix": s3_prefix,
        "s3_key_template": key_template,
        "s3_sse": sse,
        "s3_sse_kms_key_id": kms_key,
        "s3_storage_class": _storage_class(env),
        "s3_single_put_max_mib": _single_put_max(env),
        # auto: object tags where the store probe found them safe, else the job manifests only (app/store_probe)
        "s3_object_tags": _choice(env, "S3_OBJECT_TAGS", "auto", ("auto", "on", "off")),
    }


def _feed_specs(env: Mapping[str, str]) -> tuple[FeedSpec, ...]:
    """SYNC_FEEDS=Messages:2025-01-01,Calls:2025-06-01:2025-12-31 (resource type, since, optional until)."""
    raw = _get(env, "SYNC_FEEDS") or ""
    specs: dict[str, FeedSpec] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        rt, _, dates = item.partition(":")
        since, _, until = dates.partition(":")
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
        specs[rt] = FeedSpec(rt, since, until or None)
    return tuple(specs.values())


def _real_day(value: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def load_sync_settings(env: Mapping[str, str], twilio_base_url: str = "") -> SyncSettings:
    if _get(env, "RELAY_CLOCK_OFFSET_FILE") and not is_loopback_host(urlsplit(twilio_base_url).hostname):
        # app/platform/clock.py: the tests' way to move the relay's calendar with the sandbox's; never against real
        # Twilio
        raise ConfigError(
            "RELAY_CLOCK_OFFSET_FILE is for local stacks only: TWILIO_BULKEXPORTS_BASE_URL must be loopback"
        )
    return SyncSettings(
        feeds=_feed_specs(env),
        quota_reserve_days=_int(env, "FEED_QUOTA_RESERVE_DAYS", 0),
        submit_delay_hours=_int(env, "FEED_SUBMIT_DELAY_HOURS", 0),
        max_attempts=_int(env, "FEED_MAX_ATTEMPTS", 5, minimum=1),
        retry_base_seconds=_int(env, "FEED_RETRY_BASE_SECONDS", 3600, minimum=1),
        daily_grace_hours=_int(env, "DAILY_EXPORT_GRACE_HOURS", 6),
        reconcile_hours=_int(env, "RECONCILE_INTERVAL_HOURS", 24, minimum=1),
        sweep_seconds=_int(env, "SWEEP_INTERVAL_SECONDS", 300, minimum=1),
    )


def load_account_settings(env: Mapping[str, str], key_template: str | None = None) -> AccountSettings:
    """TWILIO_ACCOUNTS_FILE (JSON list of {sid, auth_token | api_key_sid + api_key_secret, label?, parent_sid?,
    auth_token_secondary?}), TWILIO_DISCOVER_SUBACCOUNTS, ACCOUNTS_REFRESH_SECONDS, TWILIO_API_BASE_URL.

    With more than one account (or discovery) S3_KEY_TEMPLATE must contain the field {account_sid} (a field, as
    ``format`` parses it: ``{{account_sid}}`` is literal text, the same for every account): two accounts' days
    must never share a key."""
    path = _get(env, "TWILIO_ACCOUNTS_FILE")
    listed = _account_file(path) if path else ()
    discover = _choice(env, "TWILIO_DISCOVER_SUBACCOUNTS", "false", ("false", "true")) == "true"
    primary = _get(env, "TWILIO_ACCOUNT_SID")
    served = {a.sid for a in listed} | ({primary} if primary else set())  # the file's accounts and TWILIO_*'s
    if discover or len(served) > 1:
        _check_account_field(key_template or "")
    return AccountSettings(
        listed=listed,
        discover_subaccounts=discover,
        refresh_seconds=_int(env, "ACCOUNTS_REFRESH_SECONDS", 600, minimum=10),
        api_base_url=_base_url(env, "TWILIO_API_BASE_URL", "https://api.twilio.com"),
    )


def _account_file(path: str) -> tuple[AccountSpec, ...]:
    import json

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


def _account_secrets(accounts: AccountSettings) -> list[str]:
    return [s for a in accounts.listed for s in (a.auth_token, a.auth_token_secondary, a.api_key_secret) if s]


def load_notify_settings(env: Mapping[str, str]) -> NotifySettings:
    """NOTIFY_URL (https, or http to loopback only, like PUBLIC_BASE_URL), NOTIFY_SECRET (``whsec_`` + base64 of
    24-64 bytes, the Standard Webhooks format; needs NOTIFY_URL), NOTIFY_RETRY_INTERVALS. The secret is never
    echoed. The URL alone is accepted: only the processes that send events (the workers) need the secret."""
    url = _get(env, "NOTIFY_URL")
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
    secret = _get(env, "NOTIFY_SECRET")
    if secret is not None:
        if url is None:
            raise ConfigError("NOTIFY_SECRET is set but NOTIFY_URL is not")
        _check_whsec(secret)
    intervals = _intervals(env, "NOTIFY_RETRY_INTERVALS", "10,60,300,1800,3600,14400")
    return NotifySettings(url, secret, intervals)


def _check_whsec(secret: str) -> None:
    import base64
    import binascii

    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not secret.startswith("whsec_") or not 24 <= len(key) <= 64:
        raise ConfigError("NOTIFY_SECRET must be whsec_ followed by the base64 of 24 to 64 random bytes")
