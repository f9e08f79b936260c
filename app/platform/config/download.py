"""The download policy's settings (``app.platform.url_policy.download_policy`` builds the policy from them): which
hosts a day-file link may point at, and the local stacks' loopback switch."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from app.platform.config.env import env_choice, env_str, is_loopback_host
from app.platform.config.settings import DEFAULT_DOWNLOAD_HOSTS, ConfigError

_HOST_PATTERN_RE = re.compile(r"\A(?:[a-z0-9*](?:[a-z0-9*-]{0,61}[a-z0-9*])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")


def download_hosts(env: Mapping[str, str]) -> tuple[str, ...]:
    """DOWNLOAD_HOST_ALLOWLIST: comma-separated host patterns (or IP literals) a day-file link may point at."""
    import ipaddress

    raw = env_str(env, "DOWNLOAD_HOST_ALLOWLIST")
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


def download_allow_loopback(env: Mapping[str, str], twilio_base_url: str) -> bool:
    """A development switch: the sandbox serves day files over http on 127.0.0.1. Refused unless the Twilio API
    itself is on loopback (the sandbox), so a deployment that talks to the real Twilio can never turn it on."""
    allow = env_choice(env, "DOWNLOAD_ALLOW_LOOPBACK", "false", ("false", "true")) == "true"
    if allow and not is_loopback_host(urlsplit(twilio_base_url).hostname):
        raise ConfigError(
            "DOWNLOAD_ALLOW_LOOPBACK=true is for local stacks only: TWILIO_BULKEXPORTS_BASE_URL must be loopback"
        )
    return allow
