"""Reading one variable from the environment: present or defaulted, one of some choices, an integer, a list of
seconds, an http(s) base URL; every failure a ConfigError naming the variable (never echoing its value when it
could be a secret)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from app.platform.config.settings import ConfigError


def env_str(env: Mapping[str, str], name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = env.get(name, "").strip()
    if value:
        return value
    if required and default is None:
        raise ConfigError(f"{name} is required but not set")
    return default


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env_str(env, name, default) or default).strip()
    normalized = {c.lower(): c for c in choices}.get(value.lower())
    if normalized is None:
        raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
    return normalized


def log_level(env: Mapping[str, str]) -> str:
    """LOG_LEVEL as logging wants it; also read by gunicorn's and RQ's logging setup, before settings load."""
    return env_choice(env, "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"))


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env_str(env, name, str(default)) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer (got {raw!r})") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum} (got {value})")
    return value


def env_intervals(env: Mapping[str, str], name: str, default: str) -> tuple[int, ...]:
    raw = env_str(env, name, default) or default
    try:
        values = tuple(int(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated seconds, e.g. {default}") from None
    if not values or any(v < 0 for v in values):
        raise ConfigError(f"{name} needs at least one non-negative number of seconds")
    return values


def env_base_url(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """An http(s) base URL; plain http only to this host (tests, the demo): credentials (Twilio's Basic auth)
    and webhook tokens would otherwise cross the network in clear."""
    raw = env_str(env, name, default, required=True)
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
