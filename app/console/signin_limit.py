"""A limit on failed console sign-ins, so that the console token cannot be guessed by trying.

Failures are counted in Redis, so every gunicorn worker and every web replica sees the same counts, in fixed
windows that expire by themselves (nothing to clean up, nothing grows):

- per client: at most MAX_PER_CLIENT failures per WINDOW_SECONDS from one address (``request.remote_addr``, which
  ProxyFix makes the client's own when PROXY_FIX_HOPS says how many proxies stand in front). An IPv6 client counts
  by its /64, which one host or household usually holds whole: otherwise a single machine could rotate addresses;
- everyone together: at most MAX_EVERYONE failures per window, a ceiling against guessing spread over many
  addresses. Reaching it refuses every sign-in until the window ends, from anywhere: a guesser with many addresses
  can lock operators out for a while (signed-in sessions keep working), but can never guess freely.

While limited, sign-in answers 429 with Retry-After (the seconds left in the window) and does not even compare the
token, so a correct token is refused too: a guesser learns nothing from it. A client's successful sign-in clears
its own count; other clients' failures never block it until the shared ceiling is reached. Without Redis the limit
cannot be known, so sign-in is refused (503) rather than left unlimited.

Nothing of the kind existed to reuse: the webhook needs none (each job's token is random, TOKEN_BYTES of
``secrets``, and only its SHA-256 is stored; a wrong one is a plain 404), and the HTTP API's ADMIN_TOKEN has no
limit on failures (``app.api.require_admin_token``): ``check``/``record_failure`` take any Redis client and
address, so it could use them too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import redis

KEY_PREFIX = "ber:signin:failures:"  # + the client's address (or /64), or EVERYONE
EVERYONE = "*"
WINDOW_SECONDS = 15 * 60
MAX_PER_CLIENT = 10
MAX_EVERYONE = 100


@dataclass(frozen=True)
class Limited:
    """Why sign-in is refused now, and for how long."""

    retry_after: int  # seconds until the window that refused it ends
    everyone: bool  # the shared ceiling (True) or this client's own count (False)

    @property
    def message(self) -> str:
        who = "from everywhere" if self.everyone else "from your address"
        minutes = max(1, -(-self.retry_after // 60))
        return (
            f"Too many failed sign-ins {who}: sign-in is paused for about {minutes} min "
            f"({self.retry_after} s). Sessions already signed in keep working."
        )


def client_id(remote_addr: str | None) -> str:
    """What a client is counted by: its IPv4 address, its IPv6 /64, or ``unknown`` (all such clients together)."""
    try:
        ip = ipaddress.ip_address((remote_addr or "").strip())
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def key_of(client: str) -> str:
    return KEY_PREFIX + client


def check(r: redis.Redis, remote_addr: str | None) -> Limited | None:
    """None when this client may try to sign in now; else why not and for how long (one round trip)."""
    keys = (key_of(client_id(remote_addr)), key_of(EVERYONE))
    with r.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        mine, mine_ttl, everyone, everyone_ttl = pipe.execute()
    if int(mine or 0) >= MAX_PER_CLIENT:
        return Limited(_seconds_left(mine_ttl), everyone=False)
    if int(everyone or 0) >= MAX_EVERYONE:
        return Limited(_seconds_left(everyone_ttl), everyone=True)
    return None


def _seconds_left(ttl: int) -> int:
    return int(ttl) if int(ttl) > 0 else WINDOW_SECONDS  # -1 cannot happen (every key is made with its expiry)


def record_failure(r: redis.Redis, remote_addr: str | None) -> None:
    """Count one failed sign-in for the client and for everyone: each counter starts its window with its expiry
    (SET NX EX, then INCR keeps it), in one transaction."""
    with r.pipeline(transaction=True) as pipe:
        for key in (key_of(client_id(remote_addr)), key_of(EVERYONE)):
            pipe.set(key, 0, ex=WINDOW_SECONDS, nx=True)
            pipe.incr(key)
        pipe.execute()


def clear(r: redis.Redis, remote_addr: str | None) -> None:
    """A successful sign-in: this client's failures are forgiven (the shared count stays until it expires)."""
    r.delete(key_of(client_id(remote_addr)))
