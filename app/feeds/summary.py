"""Feed summaries: what /health, /metrics and the ``feed.lagging`` event say about feeds, computed by the poller.

Computing a feed's coverage costs time and memory in proportion to its window's days, so the anonymous endpoints
never do it (issue 20: eight feeds since year 1 made /health and /metrics take 6-9 s each and held /livez behind
them). Each poll computes every feed's summary once, after planning (``refresh``); ``FeedStore`` keeps them
(``ber:feedsum``) and the web reads them in one round trip (``current``), so a scrape costs the same for a feed of
a week and one since EARLIEST_DAY. A summary is as fresh as the last poll (``computed_at``): a feed created since
appears at the next poll, one deleted since is left out at once. The detailed views (``GET /api/coverage``,
``relay coverage``, the console) still compute coverage, on request, for an authenticated caller.

``by_resource_type`` is what anonymous callers get: counts and states per resource type, no account named.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from app.feeds import coverage
from app.feeds.store import owner_of
from app.platform import clock
from app.services import Services

# What a summary keeps of a feed's coverage report: a few numbers, never the days or their ranges.
SUMMARY_FIELDS = ("resource_type", "account", "enabled", "window", "counts", "waiting_for_quota", "last_reconciled_at")


def summary(feed: dict[str, Any], computed_at: float) -> dict[str, Any]:
    """One feed of ``coverage.report``, summarised; ``lag`` is in days, the whole window when nothing is copied."""
    first, last = (date.fromisoformat(d) for d in feed["window"])
    lag = max(0, (last - first).days + 1) if feed["lag_days"] is None else feed["lag_days"]
    return {k: feed[k] for k in SUMMARY_FIELDS} | {"lag": lag, "computed_at": computed_at}


def refresh(svc: Services) -> int:
    """Summarise every feed (the poller, once per poll); returns how many."""
    report = coverage.report(svc)
    now = clock.now()
    summaries = {owner_of(f["resource_type"], f["account"]): summary(f, now) for f in report["feeds"]}
    svc.feeds.put_summaries(summaries)
    return len(summaries)


def current(svc: Services) -> list[dict[str, Any]]:
    """Every feed's last summary, by account and resource type (no coverage computed: one Redis round trip)."""
    return [s for _, s in sorted(svc.feeds.summaries().items())]


def by_resource_type(feeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The anonymous view: per resource type, how many feeds, their days per state summed, the largest lag and
    the days waiting for quota summed. No account, label or error text."""
    out: dict[str, dict[str, Any]] = {}
    for feed in feeds:
        rt = feed["resource_type"]
        agg = out.setdefault(rt, {"resource_type": rt, "feeds": 0, "counts": {}, "lag": 0, "waiting_for_quota": 0})
        agg["feeds"] += 1
        for state, count in feed["counts"].items():
            agg["counts"][state] = agg["counts"].get(state, 0) + count
        agg["lag"] = max(agg["lag"], feed["lag"])
        agg["waiting_for_quota"] += feed["waiting_for_quota"]
    return [out[rt] for rt in sorted(out)]
