"""The pure parts of Twilio's lists: times given their zone, queue positions as numbers, one page of a list."""

from __future__ import annotations

import pytest

from app.feeds.at_twilio import paged, queue_position
from app.jobs.documents import twilio_view, utc_text


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("2021-03-15T20:20:14.547", "2021-03-15T20:20:14.547Z"),  # Twilio's ETA: UTC without a zone
        ("2021-03-15T20:20:14", "2021-03-15T20:20:14Z"),
        ("2021-03-15 20:20", "2021-03-15T20:20Z"),
        ("2021-03-15T20:20:14.547Z", "2021-03-15T20:20:14.547Z"),  # a zone already: as it was
        ("2021-03-15T20:20:14+02:00", "2021-03-15T20:20:14+02:00"),
        ("2021-03-15", "2021-03-15"),  # a day, not a time
        ("soon", "soon"),
        ("2021-03-15T20:20:14.547\n", "2021-03-15T20:20:14.547\n"),
        (None, None),
    ],
)
def test_times_carry_their_zone(given, shown):
    assert utc_text(given) == shown


def test_a_stored_snapshot_is_shown_with_a_zoned_eta():
    kept = {"details": [], "job_queue_position": "2", "estimated_completion_time": "2026-12-07T10:00:00.100"}
    assert twilio_view(kept)["estimated_completion_time"] == "2026-12-07T10:00:00.100Z"
    assert kept["estimated_completion_time"] == "2026-12-07T10:00:00.100"  # the record itself is not changed
    assert twilio_view(None) is None and twilio_view({"listed": {"size": 1}}) == {"listed": {"size": 1}}


@pytest.mark.parametrize(
    ("given", "number"), [("0", 0), ("17", 17), (None, None), ("", None), ("-1", None), ("٣", None)]
)
def test_queue_positions_are_numbers(given, number):
    assert queue_position(given) == number


def test_paging_a_list_read_whole():
    items = list(range(5))
    assert paged(items, 0, 2) == ([0, 1], {"page": 0, "page_size": 2, "total": 5, "has_more": True})
    assert paged(items, 2, 2) == ([4], {"page": 2, "page_size": 2, "total": 5, "has_more": False})
    assert paged(items, 9, 2) == ([], {"page": 9, "page_size": 2, "total": 5, "has_more": False})
