"""Redis keys of continuous sync: feeds, per-day coverage, daily-export settings, planner bookkeeping.

Key layout (prefix ``ber:``; an *owner* is ``{account_sid}:{resource_type}``):

===============================  ======  =================================================================
key                              type    content
===============================  ======  =================================================================
ber:feeds                        set     every feed's owner
ber:feed:{owner}                 hash    the feed: since, until, enabled, managed_by (api|env), timestamps
ber:cov:{owner}                  hash    day -> JSON CoverageDay (copied, empty, in_flight, failed, retry, corrupt,
                                         deleted: a tombstone, vanished: gone from S3 and left missing)
ber:daily:{owner}                hash    daily export: enabled, token_hash, method, updated_at
ber:syncstate                    hash    "{what}:{owner}" -> unix time of the last reconcile / sweep
ber:feedsum                      hash    owner -> JSON summary of the feed (counts per state, lag; the poller's)
===============================  ======  =================================================================

None of these expire: they describe what the bucket should hold, for as long as the feed exists. A day absent
from ``ber:cov`` is *missing*. The bucket stays the final word on ``copied`` (``app.bucket.reconcile.reconcile``).

``ber:feedsum`` is derived: the poller rewrites it whole every poll (``app.feeds.summary``), so /health and /metrics
read a few numbers per feed instead of computing coverage (issue 20).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from app.platform import clock
from app.twilio.accounts import owner_of

PREFIX = "ber:"
SUMMARY_KEY = f"{PREFIX}feedsum"
COVERAGE_STATES = ("copied", "empty", "in_flight", "failed", "retry", "corrupt", "deleted", "vanished")
# Days the relay must not bring back by itself (the planner and the sweep skip every recorded day but "retry"):
# "deleted" on purpose (app/feeds/tombstones.py), "vanished" from S3 with REFETCH_VANISHED=never.
KEPT_GONE_STATES = ("deleted", "vanished")


@dataclass
class Feed:
    resource_type: str
    since: str
    until: str | None = None
    enabled: bool = True
    managed_by: str = "api"  # "env": declared in SYNC_FEEDS, which wins (the API refuses to change it)
    account: str = ""  # the account SID
    created_at: float = field(default_factory=clock.now)
    updated_at: float = field(default_factory=clock.now)
    retain_days: int | None = None  # days older than today - retain_days are outside the feed (``expired``)

    @property
    def owner(self) -> str:
        return owner_of(self.resource_type, self.account)

    def to_redis(self) -> dict[Any, Any]:
        data = asdict(self)
        data["until"] = self.until or ""
        data["enabled"] = "1" if self.enabled else "0"
        data["retain_days"] = self.retain_days or ""
        return {k: str(v) for k, v in data.items()}

    @classmethod
    def from_redis(cls, data: dict[str, str]) -> Feed:
        return cls(
            resource_type=data["resource_type"],
            since=data["since"],
            until=data.get("until") or None,
            enabled=data.get("enabled", "1") == "1",
            managed_by=data.get("managed_by", "api"),
            account=data.get("account", ""),
            created_at=float(data.get("created_at", 0)),
            updated_at=float(data.get("updated_at", 0)),
            retain_days=int(data["retain_days"]) if data.get("retain_days") else None,
        )


@dataclass
class CoverageDay:
    """What the relay knows about one (owner, day): the state, and where the file went or why it did not."""

    state: str  # one of COVERAGE_STATES; "retry" is reported as missing (asked again from next_try)
    job_sid: str | None = None
    key: str | None = None
    size: int | None = None  # copied/corrupt: the verified copy's (None in records of versions before sizes)
    sha256: str | None = None
    records: int | None = None
    create_date: str | None = None
    etag: str | None = None  # copied/corrupt: the ETag S3 gave the verified copy (None: not recorded)
    attempts: int = 0  # failed attempts so far (custom jobs that failed the day)
    next_try: float = 0.0
    error: str | None = None
    updated_at: float = field(default_factory=clock.now)  # the relay's clock: compared with listings and retries
    # The lake (issue 23, workers/lake_loader.py): "loaded" or "failed" once a lake task ran for this copy (None: no
    # lake, or not loaded yet); lake_error: why it failed. A new copy of the day writes a new record without them.
    lake: str | None = None
    lake_error: str | None = None
    deleted_by: str | None = None  # deleted: who asked ("api", "cli", "console"); ``updated_at``: when
    reason: str | None = None  # deleted: why (the asker's text)
    erased: bool | None = None  # deleted: the worker confirmed the objects are gone (None: not yet)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, 0, 0.0) or k == "state"})

    @classmethod
    def from_json(cls, raw: str) -> CoverageDay:
        data = json.loads(raw)
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


# A copied or empty day's JSON starts with its state (to_json keeps the field order; only Python writes these):
# readers of the states alone skip decoding it. Anything else (the Lua scripts' in-flight records included) is
# decoded in full.
_DONE = {state: CoverageDay(state, updated_at=0.0) for state in ("copied", "empty")}  # shared: never mutate

# The states of one coverage hash without sending done days' JSON (most of a long feed, and of 800 feeds the
# bulk of a poll's reads: bench/accounts.py): copied days, then empty days, each list joined by commas, then
# day, JSON, day, JSON, ... of every other day. KEYS[1]: coverage hash.
_STATES_LUA = """
local all = redis.call('HGETALL', KEYS[1])
local done = {copied = {}, empty = {}}
local out = {'', ''}
for i = 1, #all, 2 do
  local state = string.match(all[i + 1], '^{"state":%s*"(%a+)"')
  local list = state and done[state]
  if list then
    list[#list + 1] = all[i]
  else
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
out[1] = table.concat(done.copied, ',')
out[2] = table.concat(done.empty, ',')
return out
"""


# Mark days in flight for a job unless they are already copied or empty, or corrupt (the bucket holds a bad
# object until a copy replaces it: app/bucket/check.py), or kept gone (KEPT_GONE_STATES: a job's end must not turn
# them missing). KEYS[1]: coverage hash. ARGV: job_sid, now, day, day, ...
_IN_FLIGHT_LUA = """
local kept = {copied = true, empty = true, corrupt = true, deleted = true, vanished = true}
local marked = 0
for i = 3, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  local rec = {}
  if raw then rec = cjson.decode(raw) end
  if not kept[rec['state'] or ''] then
    rec['state'] = 'in_flight'
    rec['job_sid'] = ARGV[1]
    rec['updated_at'] = tonumber(ARGV[2])
    redis.call('HSET', KEYS[1], ARGV[i], cjson.encode(rec))
    marked = marked + 1
  end
end
return marked
"""


# Forget days still in flight for ``job_ref`` (and only those). KEYS[1]: coverage hash. ARGV: job_ref, day, ...
_RELEASE_LUA = """
local released = 0
for i = 2, #ARGV do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local rec = cjson.decode(raw)
    if rec['state'] == 'in_flight' and rec['job_sid'] == ARGV[1] then
      redis.call('HDEL', KEYS[1], ARGV[i])
      released = released + 1
    end
  end
end
return released
"""


# Replace days whose record is still the one read (same state and updated_at), or drop them (new JSON ""): a
# check that took a while (a listing, a re-read of the object) never overwrites a copy recorded meanwhile.
# KEYS[1]: coverage hash. ARGV: day, state read, updated_at read, new JSON, day, ... Returns the days changed.
_REPLACE_LUA = """
local changed = {}
for i = 1, #ARGV, 4 do
  local raw = redis.call('HGET', KEYS[1], ARGV[i])
  if raw then
    local rec = cjson.decode(raw)
    if rec['state'] == ARGV[i + 1] and tonumber(rec['updated_at'] or 0) == tonumber(ARGV[i + 2]) then
      if ARGV[i + 3] == '' then
        redis.call('HDEL', KEYS[1], ARGV[i])
      else
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 3])
      end
      changed[#changed + 1] = ARGV[i]
    end
  end
end
return changed
"""


class FeedStore:
    """Reads and writes of the keys above; each planner step costs a bounded number of round trips per feed."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._in_flight = client.register_script(_IN_FLIGHT_LUA)
        self._release = client.register_script(_RELEASE_LUA)
        self._states = client.register_script(_STATES_LUA)
        self._replace = client.register_script(_REPLACE_LUA)

    # -- feeds --------------------------------------------------------------------------------------------
    def put_feed(self, feed: Feed) -> None:
        feed.updated_at = clock.now()
        with self.r.pipeline() as p:
            p.hset(f"{PREFIX}feed:{feed.owner}", mapping=feed.to_redis())
            p.sadd(f"{PREFIX}feeds", feed.owner)
            p.execute()

    def get_feed(self, owner: str) -> Feed | None:
        data = self.r.hgetall(f"{PREFIX}feed:{owner}")
        return Feed.from_redis(data) if data else None  # type: ignore[arg-type]

    def list_feeds(self) -> list[Feed]:
        owners = sorted(str(o) for o in self.r.smembers(f"{PREFIX}feeds"))
        with self.r.pipeline() as p:
            for owner in owners:
                p.hgetall(f"{PREFIX}feed:{owner}")
            found = p.execute()
        return [Feed.from_redis(data) for data in found if data]

    def delete_feed(self, owner: str) -> bool:
        """Stop planning the feed; its coverage stays (it describes what is in the bucket)."""
        with self.r.pipeline() as p:
            p.delete(f"{PREFIX}feed:{owner}")
            p.srem(f"{PREFIX}feeds", owner)
            p.hdel(SUMMARY_KEY, owner)
            deleted, _, _ = p.execute()
        return bool(deleted)

    # -- coverage -----------------------------------------------------------------------------------------
    def coverage(self, owners: Sequence[str]) -> dict[str, dict[str, CoverageDay]]:
        """owner -> day -> record, for several owners in one round trip."""
        return {o: {d: CoverageDay.from_json(v) for d, v in r.items()} for o, r in self._raw_coverage(owners).items()}

    def day_states(self, owners: Sequence[str]) -> dict[str, dict[str, CoverageDay]]:
        """``coverage`` for readers of the states (planner, report): a copied or empty day is a shared, read-only
        record holding only its state, its JSON neither sent nor decoded (bench/planner.py, bench/accounts.py).
        One round trip (plus the script's existence check); one script per owner, so Redis serves other clients
        between owners."""
        with self.r.pipeline(transaction=False) as p:
            for owner in owners:
                self._states(keys=[f"{PREFIX}cov:{owner}"], client=p)
            replies = p.execute()
        out: dict[str, dict[str, CoverageDay]] = {}
        for owner, (copied, empty, *rest) in zip(owners, replies, strict=True):
            days = out[owner] = dict.fromkeys(str(copied).split(",") if copied else (), _DONE["copied"])
            days.update(dict.fromkeys(str(empty).split(",") if empty else (), _DONE["empty"]))
            for day, raw in zip(rest[::2], rest[1::2], strict=True):
                days[str(day)] = CoverageDay.from_json(str(raw))
        return out

    def _raw_coverage(self, owners: Sequence[str]) -> dict[str, dict[str, str]]:
        with self.r.pipeline() as p:
            for owner in owners:
                p.hgetall(f"{PREFIX}cov:{owner}")
            raw = p.execute()
        return {o: {str(d): str(v) for d, v in r.items()} for o, r in zip(owners, raw, strict=True)}

    def get_day(self, owner: str, day: str) -> CoverageDay | None:
        """One day's record (one HGET, not the owner's whole coverage)."""
        raw = self.r.hget(f"{PREFIX}cov:{owner}", day)
        return CoverageDay.from_json(str(raw)) if raw else None

    def put_days(self, owner: str, days: dict[str, CoverageDay]) -> None:
        if days:
            self.r.hset(f"{PREFIX}cov:{owner}", mapping={d: rec.to_json() for d, rec in days.items()})

    def release_days(self, owner: str, job_ref: str, days: Sequence[str]) -> int:
        """Days that ``job_ref`` (a job_sid or ``pending:{token_hash}``) held in flight are missing again; a day
        meanwhile copied, or taken by another job, is left alone. One round trip."""
        if not days:
            return 0
        return int(self._release(keys=[f"{PREFIX}cov:{owner}"], args=[job_ref, *days]))

    def drop_days(self, owner: str, days: Iterable[str]) -> None:
        days = list(days)
        if days:
            self.r.hdel(f"{PREFIX}cov:{owner}", *days)

    def replace_days(self, owner: str, changes: dict[str, tuple[CoverageDay, CoverageDay | None]]) -> list[str]:
        """day -> (the record read, its replacement or None to drop it): applied only where the record is still
        the one read (its state and ``updated_at``); returns the days changed. One round trip."""
        args: list[str | float] = []
        for day, (read, new) in changes.items():
            args += [day, read.state, repr(float(read.updated_at)), new.to_json() if new is not None else ""]
        if not args:
            return []
        return [str(d) for d in self._replace(keys=[f"{PREFIX}cov:{owner}"], args=args)]

    def mark_in_flight(self, owner: str, job_sid: str, days: Sequence[str]) -> int:
        """Days a tracked job now covers (never downgrading a copied or empty day); one round trip."""
        if not days:
            return 0
        return int(self._in_flight(keys=[f"{PREFIX}cov:{owner}"], args=[job_sid, clock.now(), *days]))

    # -- daily exports ------------------------------------------------------------------------------------
    def put_daily(self, owner: str, **fields: Any) -> None:
        mapping: dict[Any, Any] = {k: str(v) for k, v in fields.items()} | {"updated_at": str(clock.now())}
        self.r.hset(f"{PREFIX}daily:{owner}", mapping=mapping)

    def get_daily(self, owner: str) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.r.hgetall(f"{PREFIX}daily:{owner}").items()}

    def daily_enabled(self, owners: Sequence[str]) -> dict[str, bool]:
        with self.r.pipeline() as p:
            for owner in owners:
                p.hget(f"{PREFIX}daily:{owner}", "enabled")
            values = p.execute()
        return {o: v == "1" for o, v in zip(owners, values, strict=True)}

    # -- bookkeeping --------------------------------------------------------------------------------------
    def last_run(self, what: str, owner: str) -> float | None:
        value = self.r.hget(f"{PREFIX}syncstate", f"{what}:{owner}")
        return float(str(value)) if value else None

    def last_runs(self, whats: Sequence[str], owners: Sequence[str]) -> dict[tuple[str, str], float | None]:
        """``last_run`` of every (what, owner) pair, in one round trip (a poll checks every feed)."""
        pairs = [(what, owner) for what in whats for owner in owners]
        if not pairs:
            return {}
        values = self.r.hmget(f"{PREFIX}syncstate", [f"{what}:{owner}" for what, owner in pairs])
        return {pair: float(str(v)) if v else None for pair, v in zip(pairs, values, strict=True)}

    def mark_run(self, what: str, owner: str, at: float) -> None:
        self.r.hset(f"{PREFIX}syncstate", f"{what}:{owner}", str(at))

    def save_plan(self, report: dict[str, Any]) -> None:
        """The last planner run's outcome (what was submitted, what waits for quota), for coverage views."""
        self.r.hset(f"{PREFIX}syncstate", "plan", json.dumps(report))

    def last_plan(self) -> dict[str, Any]:
        raw = self.r.hget(f"{PREFIX}syncstate", "plan")
        return json.loads(str(raw)) if raw else {}

    # -- summaries (app/feeds/summary.py) --------------------------------------------------------------------
    def put_summaries(self, summaries: dict[str, dict[str, Any]]) -> None:
        """Replace every feed's summary at once (a feed gone since the last poll loses its summary too)."""
        with self.r.pipeline() as p:
            p.delete(SUMMARY_KEY)
            if summaries:
                p.hset(SUMMARY_KEY, mapping={owner: json.dumps(s) for owner, s in summaries.items()})
            p.execute()

    def summaries(self) -> dict[str, dict[str, Any]]:
        """owner -> summary of every feed that exists now (one deleted since the last poll is left out): one round
        trip, whatever the length of the feeds' windows."""
        with self.r.pipeline(transaction=False) as p:
            p.smembers(f"{PREFIX}feeds")
            p.hgetall(SUMMARY_KEY)
            owners, raw = p.execute()
        live = {str(o) for o in owners}
        return {str(o): json.loads(str(v)) for o, v in raw.items() if str(o) in live}
