"""UTC calendar days as the relay handles them: ISO strings (``YYYY-MM-DD``), ranges, chunks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from app.platform import clock

MAX_DAYS_PER_JOB = 366  # Twilio's limit for one custom job
# The oldest day a feed may start from. Twilio was founded in 2008 and opened its API that year: no account, so no
# record and no BulkExport day file, is older. Every feed window (API, CLI, console, SYNC_FEEDS) starts here at the
# earliest, so a feed's cost (coverage, planning) is bounded: about 365 days a year since 2008, not since year 1.
EARLIEST_DAY = date(2008, 1, 1)
CUSTOM_JOB_LAG_DAYS = 2  # a custom job's EndDay must be at least two days before today (UTC)
DAILY_EXPORT_LAG_DAYS = 1  # Twilio's daily export makes day D's file once D has ended


def newest_exportable_day(today: date | None = None, daily_export: bool = False) -> date:
    """The newest day whose file can exist: today-2 (UTC) for a custom job, today-1 for an account whose daily
    export is on. Every check of "how recent" (submissions, feed windows, planning, lag) asks this."""
    lag = DAILY_EXPORT_LAG_DAYS if daily_export else CUSTOM_JOB_LAG_DAYS
    return (today or clock.utc_today()) - timedelta(days=lag)


def days_between(start: date, end: date) -> list[str]:
    """Every day from ``start`` to ``end`` inclusive, as ISO strings."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def job_days(start_day: str, end_day: str) -> list[str]:
    return days_between(date.fromisoformat(start_day), date.fromisoformat(end_day))


def split_range(start: date, end: date, max_days: int = MAX_DAYS_PER_JOB) -> list[tuple[date, date]]:
    """Consecutive chunks of at most ``max_days`` days covering start..end inclusive."""
    chunks = []
    cursor = start
    while cursor <= end:
        chunk_end = min(end, cursor + timedelta(days=max_days - 1))
        chunks.append((cursor, chunk_end))
        cursor = chunk_end + timedelta(days=1)
    return chunks


def compact_ranges(days: Iterable[str]) -> list[tuple[str, str]]:
    """Sorted ISO days folded into inclusive (first, last) runs of consecutive days."""
    ordered = sorted(set(days))
    if ordered and (date.fromisoformat(ordered[-1]) - date.fromisoformat(ordered[0])).days == len(ordered) - 1:
        return [(ordered[0], ordered[-1])]  # distinct days spanning exactly their count: one run (the usual case)
    runs: list[tuple[str, str]] = []
    previous: date | None = None
    for text in ordered:
        current = date.fromisoformat(text)
        if previous is not None and current - previous == timedelta(days=1):
            runs[-1] = (runs[-1][0], text)
        else:
            runs.append((text, text))
        previous = current
    return runs
