"""A job's days: one JSON ``DayRecord`` per day of the job's range (state, S3 key, size, sha256, records).

Key layout (prefix ``ber:``):

======================  ======  ===============================================================  ==========
key                     type    content                                                          expiry
======================  ======  ===============================================================  ==========
ber:job:{sid}:days      hash    day -> JSON day record (``app.jobs.records.DayRecord``)           retention*
======================  ======  ===============================================================  ==========

``retention*``: the job's retention clock (``JOB_RETENTION_DAYS``) starts when ``app.jobs.store.JobStore`` makes
the job final, and stops again when it reopens it; a day record itself never expires on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from app.jobs.records import DayRecord, DayState
from app.platform import clock

PREFIX = "ber:"

# Move a day to COPYING only if it is not already final; returns the previous state ('' if none).
_CLAIM_DAY_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local state = ''
local rec
if raw then rec = cjson.decode(raw); state = rec['state'] else rec = cjson.decode(ARGV[2]) end
if state == 'copied' or state == 'empty' then return state end
rec['state'] = 'copying'
rec['attempts'] = (rec['attempts'] or 0) + 1
rec['updated_at'] = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return state
"""

# 1 if every listed day has a final record. Decoded inside Redis so that the check after each copy costs one
# round trip and no transfer of the records (a 366-day job would otherwise read 366 records per copy).
_ALL_DAYS_FINAL_LUA = """
local recs = redis.call('HMGET', KEYS[1], unpack(ARGV))
for _, raw in ipairs(recs) do
  if not raw then return 0 end
  local state = cjson.decode(raw)['state']
  if state ~= 'copied' and state ~= 'empty' and state ~= 'failed' then return 0 end
end
return 1
"""


def days_key(sid: str) -> str:
    return f"{PREFIX}job:{sid}:days"


class DayStore:
    """Reads and writes of day records; the claim is atomic (two copies of one day never both start)."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._claim = client.register_script(_CLAIM_DAY_LUA)
        self._all_days_final = client.register_script(_ALL_DAYS_FINAL_LUA)

    def get_days(self, sid: str) -> dict[str, DayRecord]:
        raw = self.r.hgetall(days_key(sid))
        return {str(d): DayRecord.from_json(str(v)) for d, v in sorted(raw.items())}

    def all_days_final(self, sid: str, days: Sequence[str]) -> bool:
        """Whether each of ``days`` has a record in a final state (copied, empty, failed)."""
        for start in range(0, len(days), 1000):  # unpack() in Lua has a stack limit of a few thousand
            if not int(self._all_days_final(keys=[days_key(sid)], args=list(days[start : start + 1000]))):
                return False
        return True

    def get_day(self, sid: str, day: str) -> DayRecord | None:
        raw = self.r.hget(days_key(sid), day)
        return DayRecord.from_json(str(raw)) if raw else None

    def ensure_days(self, sid: str, days: Iterable[DayRecord]) -> None:
        """Add day records that do not exist yet (never overwrite progress)."""
        with self.r.pipeline() as p:
            for rec in days:
                p.hsetnx(days_key(sid), rec.day, rec.to_json())
            p.execute()

    def put_day(self, sid: str, rec: DayRecord) -> None:
        rec.updated_at = clock.now()
        self.r.hset(days_key(sid), rec.day, rec.to_json())

    def claim_day(self, sid: str, day: str) -> DayState | None:
        """Atomically mark a day COPYING unless it is already copied/empty. Returns the previous state."""
        template = DayRecord(day=day).to_json()
        prev = self._claim(keys=[days_key(sid)], args=[day, template, clock.now()])
        return DayState(str(prev)) if prev else None

    def days_ttl(self, sid: str) -> int:
        """Seconds until the job's day records expire (-1: they do not, -2: there are none)."""
        return int(self.r.ttl(days_key(sid)))
