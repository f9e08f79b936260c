"""Twilio's daily quota of requested days, counted per account family across every process.

Key layout (prefix ``ber:``):

==================================  ======  ==========================================================  ======
key                                 type    content                                                     expiry
==================================  ======  ==========================================================  ======
ber:quota:[{family}:]{YYYY-MM-DD}   string  days requested that UTC day by an account family (no         2 days
                                            family: TWILIO_ACCOUNT_SID's), against TWILIO_DAILY_DAY_QUOTA
==================================  ======  ==========================================================  ======
"""

from __future__ import annotations

import redis

from app.platform.errors import QuotaExceeded

PREFIX = "ber:"
QUOTA_TTL = 2 * 24 * 3600
DAILY_DAY_QUOTA = 366

# Atomically refuse a submission that would take today's requested days past the quota.
_QUOTA_LUA = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if used + want > tonumber(ARGV[2]) then return -1 - used end
local now = redis.call('INCRBY', KEYS[1], want)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return now
"""


class QuotaStore:
    """``daily_quota``: TWILIO_DAILY_DAY_QUOTA; ``default_account``: TWILIO_ACCOUNT_SID, whose family keeps the key
    of single-account versions."""

    def __init__(self, client: redis.Redis, daily_quota: int = DAILY_DAY_QUOTA, default_account: str = "") -> None:
        self.r = client
        self.daily_quota = daily_quota
        self.default_account = default_account
        self._quota = client.register_script(_QUOTA_LUA)

    def _key(self, utc_date: str, family: str) -> str:
        """One counter per account family (a parent and its subaccounts) and UTC day."""
        if not family or family == self.default_account:
            return f"{PREFIX}quota:{utc_date}"
        return f"{PREFIX}quota:{family}:{utc_date}"

    def reserve(self, utc_date: str, days: int, limit: int | None = None, family: str = "") -> int:
        """Count ``days`` against the family's quota that day or raise QuotaExceeded (atomic across processes).
        ``limit``: a lower ceiling for this caller (the planner leaves FEED_QUOTA_RESERVE_DAYS for manual use)."""
        ceiling = self.daily_quota if limit is None else min(limit, self.daily_quota)
        result = int(self._quota(keys=[self._key(utc_date, family)], args=[days, ceiling, QUOTA_TTL]))
        if result < 0:
            raise QuotaExceeded(used=-1 - result, wanted=days, quota=ceiling)
        return result

    def release(self, utc_date: str, days: int, family: str = "") -> None:
        """Give back days reserved for a submission Twilio refused outright."""
        self.r.decrby(self._key(utc_date, family), days)

    def used(self, utc_date: str, family: str = "") -> int:
        return int(self.r.get(self._key(utc_date, family)) or 0)

    def expires_in(self, utc_date: str, family: str = "") -> int:
        """Seconds until that day's counter expires (-1: it does not, -2: there is none)."""
        return int(self.r.ttl(self._key(utc_date, family)))
