"""Feed summaries: what /health, /metrics and the ``feed.lagging`` event say about feeds, computed by the poller.

Computing a feed's coverage costs time and memory in proportion to its window's days, so the anonymous endpoints
never do it (issue 20: eight feeds since year 1 made /health and /metrics take 6-9 s each and held /livez behind
them). Each poll computes every feed's summary once, after planning (``refresh``); ``FeedStore`` keeps them
(``ber:feedsum``) and the web reads them in one round trip (``current``), so a scrape costs the same for a feed of
a week and one since EARLIEST_DAY. A summary is as fresh as the last poll (``computed_at``): a feed created since
appears at the next poll, one deleted since is left out at once. The detailed views (``GET /api/coverage``,
``relay coverage``, the console) still compute coverage, on request, for an authenticated caller.

``by_resource_type`` is what anonymous callers get: counts and states per resource type, no account named.
``feeds_lagging`` announces, from the same summaries, the feeds lagging more than FEED_LAG_DAYS (``feed.lagging``).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from app.feeds import coverage
from app.jobs import events
from app.platform import clock
from app.platform.days import newest_exportable_day
from app.twilio.accounts import owner_of

if TYPE_CHECKING:
    from app.services import Services

# What a summary keeps of a feed's coverage report: a few numbers, never the days or their ranges.
SUMMARY_FIELDS = (
    "resource_type",
    "account",
    "enabled",
    "daily_export",
    "window",
    "counts",
    "waiting_for_quota",
    "last_reconciled_at",
)
# A feed lags when more than this many days separate the newest day that can exist from its newest copied or empty
# day: feed.lagging, /health's warning and the RelayFeedLagging alert (deploy/prometheus/) all use this threshold.
FEED_LAG_DAYS = 2


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


@events.best_effort("feed.lagging")
def feeds_lagging(svc: Services) -> None:
    """Each feed lagging more than FEED_LAG_DAYS behind the newest day that can exist: once per feed and UTC date,
    and only once the feed has been reconciled with the bucket (before that its days in S3 are not known, and the
    event, sent once a day, would carry a lag and a quota wait that the first plan has not measured). The lag is
    the one /health and /metrics report: from the summaries the same poll refreshed just before."""
    today = clock.utc_today()
    for feed in current(svc):
        if feed["lag"] <= FEED_LAG_DAYS or feed["last_reconciled_at"] is None:
            continue  # not lagging, or its coverage is not known yet (never compared with the bucket nor planned)
        newest = newest_exportable_day(today, bool(feed.get("daily_export")))  # absent in older summaries
        data = {
            "resource_type": feed["resource_type"],
            "account": feed["account"],
            "lag_days": feed["lag"],
            "threshold_days": FEED_LAG_DAYS,
            "window": feed["window"],
            "newest_possible_day": newest.isoformat(),
            "counts": feed["counts"],
            "waiting_for_quota": feed["waiting_for_quota"],
        }
        events.emit(svc, "feed.lagging", owner_of(feed["resource_type"], feed["account"]), today.isoformat(), data)
