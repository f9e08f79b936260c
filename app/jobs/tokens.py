"""Webhook tokens: which job (or daily export) a token names, submissions still waiting for Twilio's answer, the
webhook rate limit, and whether a validly signed delivery was ever seen.

Key layout (prefix ``ber:``):

==============================  ======  ============================================================  ==========
key                             type    content                                                       expiry
==============================  ======  ============================================================  ==========
ber:pending:{token_hash}        hash    a submission before Twilio answered (request fields)           1 day
ber:token:{token_hash}          string  ``{account_sid}|{target}``: the job_sid (or daily:{owner})     retention*
                                        the webhook token belongs to (no account: single-account
                                        versions)
ber:hookrate:{sid|target}       string  a webhook queued this job's sync (or target's sweep) lately    60 s
ber:webhooks:signed_seen        string  when the first validly signed webhook arrived (policy auto)     none
==============================  ======  ============================================================  ==========

``retention*``: set once the job is final (``JOB_RETENTION_DAYS``, by ``app.jobs.store.JobStore.finish_job``).
Webhook tokens are stored only as SHA-256 hashes (``app.jobs.records.hash_token``): a Redis dump does not reveal
them. ``JobStore`` writes some of these keys inside its own atomic scripts (a new job's token replaces its pending
submission; a delivery sets the rate key and the signed marker), naming them with this module's key functions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import redis

from app.platform import clock

PREFIX = "ber:"
PENDING_TTL = 24 * 3600
SIGNED_MARKER = f"{PREFIX}webhooks:signed_seen"
TARGET_SEP = "|"  # a token's value: {account_sid}|{target}


def token_key(token_hash: str) -> str:
    return f"{PREFIX}token:{token_hash}"


def pending_key(token_hash: str) -> str:
    return f"{PREFIX}pending:{token_hash}"


def hookrate_key(target: str) -> str:
    return f"{PREFIX}hookrate:{target}"


def token_value(account_sid: str, target: str) -> str:
    """What a token's key holds: the target, prefixed with its account when there is one."""
    return f"{account_sid}{TARGET_SEP}{target}" if account_sid else target


# A webhook token -> its target (job_sid or daily:{owner}), whether its submission is still pending, and whether
# this deployment has seen a validly signed delivery. KEYS: token, pending, signed-marker.
_WEBHOOK_TARGET_LUA = """
local target = redis.call('GET', KEYS[1]) or ''
local pending = ''
if target == '' and redis.call('EXISTS', KEYS[2]) == 1 then
  pending = redis.call('HGET', KEYS[2], 'account_sid') or '-'
end
return {target, pending, redis.call('EXISTS', KEYS[3])}
"""


class TokenLookup(NamedTuple):
    """What a webhook's token names, before anything of the request is parsed."""

    target: str | None  # job_sid, or daily:{owner}; None if unknown
    pending: bool  # no job yet, but a submission with this token is in flight
    signed_seen: bool  # a validly signed delivery has reached this deployment (WEBHOOK_SIGNATURE=auto)
    account_sid: str = ""  # the account whose auth token signs this webhook ("": TWILIO_ACCOUNT_SID)


class TokenStore:
    """The keys above; ``default_account`` (TWILIO_ACCOUNT_SID) is whom a token without an account belongs to."""

    def __init__(self, client: redis.Redis, default_account: str = "") -> None:
        self.r = client
        self.default_account = default_account
        self._token_lookup = client.register_script(_WEBHOOK_TARGET_LUA)

    # -- submissions before Twilio answered ---------------------------------------------------------------
    def add_pending(self, token_hash: str, request: dict[Any, Any]) -> None:
        """Record the token before Twilio is called, so an early webhook is recognised, never refused."""
        key = pending_key(token_hash)
        with self.r.pipeline() as p:
            p.hset(key, mapping={**request, "created_at": str(clock.now())})
            p.expire(key, PENDING_TTL)
            p.execute()

    def pending_exists(self, token_hash: str) -> bool:
        return bool(self.r.exists(pending_key(token_hash)))

    def drop_pending(self, token_hash: str) -> None:
        self.r.delete(pending_key(token_hash))

    def pending_submissions(self) -> dict[str, dict[str, str]]:
        """token_hash -> request of submissions whose Twilio answer never arrived (kept to reconcile them)."""
        out = {}
        for key in self.r.scan_iter(pending_key("*"), count=500):
            data = self.r.hgetall(key)
            if data:
                out[str(key).removeprefix(pending_key(""))] = {str(k): str(v) for k, v in data.items()}
        return out

    # -- tokens -------------------------------------------------------------------------------------------
    def job_for_token(self, token_hash: str) -> str | None:
        value = self.r.get(token_key(token_hash))
        return str(value).rpartition(TARGET_SEP)[2] if value else None

    def set_token(self, token_hash: str, target: str, account_sid: str, replaces: str | None = None) -> None:
        """Point a webhook token at ``target`` (``daily:{owner}`` for daily exports) of ``account_sid``."""
        with self.r.pipeline() as p:
            if replaces:
                p.delete(token_key(replaces))
            p.set(token_key(token_hash), f"{account_sid}{TARGET_SEP}{target}")
            p.execute()

    def drop_token(self, token_hash: str) -> None:
        self.r.delete(token_key(token_hash))

    def token_ttl(self, token_hash: str) -> int:
        """Seconds until the token's mapping expires (-1: it does not, -2: there is none)."""
        return int(self.r.ttl(token_key(token_hash)))

    def lookup_token(self, token_hash: str) -> TokenLookup:
        """The webhook's first step, one round trip: what the token names (nothing of the request is parsed yet)."""
        keys = [token_key(token_hash), pending_key(token_hash), SIGNED_MARKER]
        value, pending, signed_seen = self._token_lookup(keys=keys)
        account, _, target = str(value).rpartition(TARGET_SEP)  # tokens of single-account versions: no account
        if pending and pending != "-":
            account = str(pending)
        return TokenLookup(target or None, bool(pending), bool(int(signed_seen)), account or self.default_account)

    # -- deliveries ---------------------------------------------------------------------------------------
    def webhook_rate_ok(self, target: str, rate_seconds: int) -> bool:
        """At most one webhook-triggered action per target and ``rate_seconds`` (daily-export sweeps)."""
        return bool(self.r.set(hookrate_key(target), str(clock.now()), nx=True, ex=rate_seconds))

    def mark_signed_seen(self, at: float | None = None) -> None:
        """Remember that a validly signed delivery was seen (``at``: when, restored by app/jobs/recovery.py; else
        now)."""
        self.r.set(SIGNED_MARKER, str(clock.now() if at is None else at), nx=True)

    def signed_seen(self) -> float | None:
        value = self.r.get(SIGNED_MARKER)
        return float(str(value)) if value else None
