"""Limits on failed authentications, so that the console token and ADMIN_TOKEN cannot be guessed by trying.

One mechanism, two limits (``CONSOLE_SIGNIN`` for the console's sign-in form, ``API_TOKEN`` for the bearer token of
the HTTP API, ``app.web.api.require_admin_token``). Failures are counted in Redis, so every gunicorn worker and every
web replica sees the same counts, in fixed windows that expire by themselves (nothing to clean up, nothing grows):

- per client: at most ``max_per_client`` failures per ``window_seconds`` from one address (``request.remote_addr``,
  which ProxyFix makes the client's own when PROXY_FIX_HOPS says how many proxies stand in front). An IPv6 client
  counts by its /64, which one host or household usually holds whole: otherwise a single machine could rotate
  addresses. Clients without a readable address are counted together (``unknown``);
- everyone together (``max_everyone``, optional): a ceiling against guessing spread over many addresses. Reaching
  it refuses everyone until the window ends, from anywhere.

Every attempt is counted as a failure before its token is compared (``reserve``, one atomic script: concurrent
attempts cannot slip through together between a check and a count), and a right token takes its count back
(``release``): so no more than the limit's number of tokens is ever compared per window. While limited, the
caller answers 429 with Retry-After (the seconds left in the window) and does not even compare the token, so a
correct token is refused too: a guesser learns nothing from it. Without Redis the limit cannot be
known, so both callers refuse (503, the web's "storage unavailable") rather than run unlimited; the API needs Redis
for every request anyway.

The numbers, and why:

- Console sign-in: 10 failures per address, 100 from everyone, per 15 minutes. A person mistypes a few times, not
  ten; the ceiling can lock operators out of *signing in* for a while (signed-in sessions keep working) but never
  lets anyone guess freely. A successful sign-in clears its own address's count (a person who finally typed it
  right starts afresh; the shared count stays until it expires).
- API token: 20 failures per address per 15 minutes, and no shared ceiling. Automation is what calls the API:
  after a token rotation several scripts behind one address may each retry with the old token a few times, so the
  limit is higher than a person's. A shared ceiling is left out on purpose: anyone with enough addresses could
  then lock every script out of the API at will, and the API is what operators use to repair things. The
  defence is the per-address limit times the token's strength: ADMIN_TOKEN must be at least 16 characters
  (start-up refuses shorter) and is generated randomly (62^16 ~ 5e28 values); 20 guesses per 15 min is 1,920 a
  day per address, and even a million addresses (or /64s) would need ~1e16 years on average. A correct token
  does *not* clear the address's count (it only gives back its own): with scripts and a guesser behind one NAT
  address, the scripts' steady successes would otherwise reset the guesser's count for ever.
  The price: a client with a stale token shares the limit with good clients behind the same address; the
  refusals are logged with the address and counted (``relay_api_auth_total{outcome=refused|limited}``).

The webhook needs no limit: each job's token is random (TOKEN_BYTES of ``secrets``) and only its SHA-256 is
stored; a wrong one is a plain 404.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class Limited:
    """Why authentication is refused now, and for how long."""

    retry_after: int  # seconds until the window that refused it ends
    everyone: bool  # the shared ceiling (True) or this client's own count (False)
    limit: FailureLimit

    @property
    def message(self) -> str:
        who = "from everywhere" if self.everyone else "from your address"
        minutes = max(1, -(-self.retry_after // 60))
        return (
            f"Too many failed {self.limit.what} {who}: {self.limit.paused} is paused for about {minutes} min "
            f"({self.retry_after} s).{self.limit.note}"
        )


@dataclass(frozen=True)
class FailureLimit:
    """Fixed-window counts of failures per client (and, optionally, from everyone) under ``key_prefix``."""

    key_prefix: str  # + the client's address (or /64), or EVERYONE
    window_seconds: int
    max_per_client: int
    max_everyone: int | None  # None: no shared ceiling
    what: str  # the failures' name in messages ("sign-ins")
    paused: str  # what is paused while limited ("sign-in")
    note: str = ""  # appended to the message

    def key_of(self, client: str) -> str:
        return self.key_prefix + client

    def counters(self, remote_addr: str | None) -> list[tuple[str, int]]:
        """The keys this client's failures count under, each with its maximum: its own, then everyone's."""
        counters = [(self.key_of(client_id(remote_addr)), self.max_per_client)]
        if self.max_everyone is not None:
            counters.append((self.key_of(EVERYONE), self.max_everyone))
        return counters

    def seconds_left(self, ttl: int) -> int:
        return int(ttl) if int(ttl) > 0 else self.window_seconds  # -1 cannot happen: keys are made with expiry


EVERYONE = "*"
WINDOW_SECONDS = 15 * 60

# KEYS: the counters (the client's, then everyone's); ARGV: the window's seconds, then each counter's maximum.
# {0, 0}: counted; {i, ttl}: KEYS[i] is at its maximum (nothing counted). A new counter starts its window.
_RESERVE = """
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    return {i, redis.call('TTL', key)}
  end
end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1]) end
end
return {0, 0}
"""
# KEYS: as above; ARGV[1]: '1' to forget the client's count (KEYS[1]) instead of taking one off.
_RELEASE = """
for i, key in ipairs(KEYS) do
  if i == 1 and ARGV[1] == '1' then
    redis.call('DEL', key)
  elseif tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
return 0
"""

CONSOLE_SIGNIN = FailureLimit(
    key_prefix="ber:signin:failures:",
    window_seconds=WINDOW_SECONDS,
    max_per_client=10,
    max_everyone=100,
    what="sign-ins",
    paused="sign-in",
    note=" Sessions already signed in keep working.",
)
API_TOKEN = FailureLimit(
    key_prefix="ber:api:auth-failures:",
    window_seconds=WINDOW_SECONDS,
    max_per_client=20,
    max_everyone=None,
    what="API authentications",
    paused="API access",
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


class FailureCounts:
    """The counts of every ``FailureLimit``: string keys ``{key_prefix}{client}`` (and ``{key_prefix}*``, everyone's),
    each expiring with its window: ``ber:signin:failures:...`` (CONSOLE_SIGNIN), ``ber:api:auth-failures:...``
    (API_TOKEN)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def reserve(self, limit: FailureLimit, remote_addr: str | None) -> Limited | None:
        """Count this attempt as a failure *before* its token is compared, unless the client is limited already:
        then why and for how long, and nothing is counted. One atomic script, so concurrent attempts cannot all
        pass a check made before any of them is counted: at most ``max_per_client`` tokens from one client (and
        ``max_everyone`` from all) are ever compared per window. A right token gives its count back (``release``).
        """
        counters = limit.counters(remote_addr)
        keys = [key for key, _ in counters]
        index, ttl = self.r.eval(_RESERVE, len(keys), *keys, limit.window_seconds, *(m for _, m in counters))
        if int(index) == 0:
            return None
        return Limited(limit.seconds_left(ttl), everyone=int(index) > 1, limit=limit)

    def release(self, limit: FailureLimit, remote_addr: str | None, forgive: bool = False) -> None:
        """The reserved attempt's token was right, so it was no failure: its counts go back down (never below 0;
        a window that ended meanwhile is left alone). ``forgive`` also forgets this client's earlier failures
        (the shared count stays until it expires)."""
        keys = [key for key, _ in limit.counters(remote_addr)]
        self.r.eval(_RELEASE, len(keys), *keys, int(forgive))

    def clear(self, limit: FailureLimit, remote_addr: str | None) -> None:
        """A success that forgives this client's failures (the shared count stays until it expires)."""
        self.r.delete(limit.key_of(client_id(remote_addr)))
