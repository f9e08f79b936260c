"""Retention settings and the lifecycle rule's prefixes (issue 22): SYNC_FEEDS' fourth part, REFETCH_VANISHED, a
feed's window with retain_days, and the key prefix a lifecycle rule may filter on (or none)."""

from __future__ import annotations

from datetime import date

import pytest

from app.feeds.coverage import feed_states, feed_window
from app.feeds.lifecycle_rule import feed_prefix
from app.feeds.store import Feed
from app.platform.config import ConfigError, load_settings
from app.platform.config.settings import DEFAULT_KEY_TEMPLATE
from tests.unit.test_config import BASE

TODAY = date(2026, 6, 10)


def test_sync_feeds_takes_retain_days_as_a_fourth_part():
    feeds = load_settings(BASE | {"SYNC_FEEDS": "Calls:2025-01-01::90,Messages:2025-01-01:2025-12-31"}).sync.feeds
    assert [(f.resource_type, f.until, f.retain_days) for f in feeds] == [
        ("Calls", None, 90),
        ("Messages", "2025-12-31", None),
    ]


@pytest.mark.parametrize("retain", ["0", "x", "-3"])
def test_sync_feeds_refuses_a_bad_retain_days(retain):
    with pytest.raises(ConfigError, match="retain_days"):
        load_settings(BASE | {"SYNC_FEEDS": f"Calls:2025-01-01::{retain}"})


def test_refetch_vanished_is_auto_or_never():
    assert load_settings(BASE).sync.refetch_vanished == "auto"
    assert load_settings(BASE | {"REFETCH_VANISHED": "never"}).sync.refetch_vanished == "never"
    with pytest.raises(ConfigError, match="REFETCH_VANISHED"):
        load_settings(BASE | {"REFETCH_VANISHED": "sometimes"})


def test_retain_days_moves_the_window_and_the_older_days_are_expired():
    feed = Feed("Calls", "2026-05-01", retain_days=10)
    window = feed_window(feed, False, TODAY)
    assert (window.first, window.last, window.expired_since) == (date(2026, 5, 31), date(2026, 6, 8), date(2026, 5, 1))
    states = feed_states(window, {})
    assert states["2026-05-30"] == "expired" and states["2026-05-31"] == "missing"
    assert feed_window(Feed("Calls", "2026-06-01", retain_days=30), False, TODAY).expired_since is None


@pytest.mark.parametrize(
    ("template", "account", "expected"),
    [
        (DEFAULT_KEY_TEMPLATE, "AC1", "twilio/Calls/day="),
        ("{prefix}{account_sid}/{resource_type}/{day}.gz", "AC1", "twilio/AC1/Calls/"),
        ("{prefix}{resource_type}/{day}/{account_sid}.gz", "AC1", None),  # the account after the day
        ("{prefix}{day}/{resource_type}.gz", "AC1", None),
        ("{prefix}{resource_type}-{job_sid}-{day}.gz", "", "twilio/Calls-"),
    ],
)
def test_a_feeds_prefix_comes_from_the_key_template(template, account, expected):
    assert feed_prefix(template, "twilio/", Feed("Calls", "2026-01-01", account=account)) == expected
