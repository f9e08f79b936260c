"""Settings from the environment, validated once at start-up.

The variable names are a contract shared with the deploy files, the README and external checks. S3 endpoint,
credentials, region, CA bundle and checksum mode are *not* here: boto3 reads its own standard ``AWS_*``
variables (``AWS_ENDPOINT_URL_S3``, ``AWS_REQUEST_CHECKSUM_CALCULATION``, ``AWS_CA_BUNDLE``, ...), and we let it.

One module per concept: ``settings`` (the dataclasses, ``ConfigError``, shared defaults and patterns), ``env``
(reading one variable), ``s3``, ``download``, ``accounts`` and ``sections`` (one section of the settings each),
``load`` (``load_settings`` and the other entry points). The public face is this package: import from
``app.platform.config`` (the names below), not from its modules.
"""

from __future__ import annotations

from app.platform.config.accounts import load_account_settings
from app.platform.config.env import is_loopback_host, log_level
from app.platform.config.lake import LakeSettings, default_warehouse, load_lake_settings
from app.platform.config.load import load_schedule, load_settings, require_web_settings
from app.platform.config.s3 import KEY_TEMPLATE_FIELDS, S3_ADDRESSING_STYLES, check_key_template, key_template_fields
from app.platform.config.sections import load_console_settings, load_notify_settings, load_sync_settings
from app.platform.config.settings import (
    ACCOUNT_SID_RE,
    API_KEY_SID_RE,
    DEFAULT_DOWNLOAD_HOSTS,
    DEFAULT_S3_PREFIX,
    DEFAULT_SINGLE_PUT_MAX_MIB,
    RESOURCE_TYPES,
    AccountSettings,
    AccountSpec,
    ConfigError,
    ConsoleSettings,
    FeedSettings,
    FeedSpec,
    NotifySettings,
    Settings,
)

__all__ = [
    "ACCOUNT_SID_RE",
    "API_KEY_SID_RE",
    "DEFAULT_DOWNLOAD_HOSTS",
    "DEFAULT_S3_PREFIX",
    "DEFAULT_SINGLE_PUT_MAX_MIB",
    "KEY_TEMPLATE_FIELDS",
    "RESOURCE_TYPES",
    "S3_ADDRESSING_STYLES",
    "AccountSettings",
    "AccountSpec",
    "ConfigError",
    "ConsoleSettings",
    "FeedSettings",
    "FeedSpec",
    "LakeSettings",
    "NotifySettings",
    "Settings",
    "check_key_template",
    "default_warehouse",
    "is_loopback_host",
    "key_template_fields",
    "load_account_settings",
    "load_console_settings",
    "load_lake_settings",
    "load_notify_settings",
    "load_schedule",
    "load_settings",
    "load_sync_settings",
    "log_level",
    "require_web_settings",
]
