"""The newest day whose file can exist: the one rule submissions, feed windows, the planner and feed.lagging share."""

from __future__ import annotations

from datetime import date

from app.platform.days import newest_exportable_day

TODAY = date(2026, 11, 10)


def test_a_custom_job_reaches_two_days_back() -> None:
    assert newest_exportable_day(TODAY) == date(2026, 11, 8)


def test_a_daily_export_reaches_yesterday() -> None:
    assert newest_exportable_day(TODAY, daily_export=True) == date(2026, 11, 9)
