"""The days tests name: ISO dates (as Twilio, the relay's records and its S3 keys spell them) counted back from
today."""

from __future__ import annotations

from datetime import date, timedelta

from app.platform import clock


def day(days_ago: int, today: date | None = None) -> str:
    """``days_ago`` days before ``today``; by default the relay's UTC today (app/platform/clock.py, so a test that
    moves the relay's clock moves it too). A module whose clock moves while it runs passes a ``today`` it fixed."""
    return ((today or clock.utc_today()) - timedelta(days=days_ago)).isoformat()
