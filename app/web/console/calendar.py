"""The coverage calendar of one feed: a year of days coloured by state (with a letter and a pattern each), the
record behind each day (key, size, records, sha256, job) on hover, focus or selection, and retry of a failed,
missing or corrupt day (the rule is in ``app.web.console.retry``)."""

from __future__ import annotations

import calendar as std_calendar
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from app.feeds import coverage, declared, tombstones
from app.feeds.store import CoverageDay, Feed
from app.platform import clock
from app.platform.errors import DomainError, RequestError
from app.platform.validation import bounded_int, parse_day
from app.services import Services, current_services
from app.twilio.client import TwilioError
from app.web.console.account import selected_account
from app.web.console.blueprint import bp
from app.web.console.retry import copy_failed_in_job, retry_day
from app.web.console.web import STATE_LABELS, STATE_LETTERS, fail, ok, render

RETRYABLE = ("failed", "missing", "corrupt")


@dataclass(frozen=True)
class DayCell:
    day: date
    state: str  # one of coverage.REPORTED_STATES, or "outside" (not in the feed's window)
    rec: CoverageDay | None = None

    @property
    def iso(self) -> str:
        return self.day.isoformat()

    @property
    def letter(self) -> str:
        return STATE_LETTERS[self.state]

    @property
    def label(self) -> str:
        return f"{self.day.strftime('%A')} {self.day.day} {self.day.strftime('%B %Y')}: {STATE_LABELS[self.state]}"


@dataclass
class Month:
    name: str
    weeks: list[list[DayCell | None]] = field(default_factory=list)  # Monday first; None pads the edges

    @property
    def in_window(self) -> bool:
        """Whether any of its days is in the feed's window (phones show only those months)."""
        return any(c is not None and c.state != "outside" for week in self.weeks for c in week)


def year_months(year: int, states: dict[str, str], cov: dict[str, CoverageDay]) -> list[Month]:
    """Twelve month grids of ``year``: each day's reported state, ``outside`` when not in the window."""
    months = []
    for month in range(1, 13):
        grid = Month(date(year, month, 1).strftime("%B"))
        for week in std_calendar.Calendar(firstweekday=0).monthdatescalendar(year, month):
            row: list[DayCell | None] = []
            for day in week:
                if day.month != month:
                    row.append(None)
                else:
                    iso = day.isoformat()
                    row.append(DayCell(day, states.get(iso, "outside"), cov.get(iso)))
            grid.weeks.append(row)
        months.append(grid)
    return months


def _year_arg(first: date, last: date) -> int:
    """``?year=``: not a year is a 400; a year outside the feed's window (an old bookmark) shows the last one."""
    year = bounded_int(request.args, "year", last.year, date.max.year, low=date.min.year)
    return year if first.year <= year <= last.year else last.year


def _detail(states: dict[str, str], cov: dict[str, CoverageDay]) -> dict[str, Any] | None:
    """The selected day (``?day=``): its cell, and whether (and how) it can be retried."""
    raw = request.args.get("day")
    if not raw:
        return None
    try:
        day = parse_day(raw, "day")
    except RequestError:
        return {"error": f"{raw[:20]!r} is not a day (YYYY-MM-DD)"}
    cell = DayCell(day, states.get(day.isoformat(), "outside"), cov.get(day.isoformat()))
    job_sid = cell.rec.job_sid if cell.rec else None
    requeue = cell.state in RETRYABLE and copy_failed_in_job(current_services(), job_sid, cell.iso)
    return {"cell": cell, "retryable": cell.state in RETRYABLE, "requeue": requeue}


def _work_in_flight(svc: Services, feed: Feed, states: dict[str, str]) -> bool:
    """Days in flight, or missing ones the planner will submit at its next poll (enabled, quota left today)."""
    if "in_flight" in states.values():
        return True
    if not feed.enabled or "missing" not in states.values():
        return False
    return bool(coverage.quota_view(svc, clock.utc_today(), selected_account().family)["left_for_feeds"])


@bp.get("/feeds/<resource_type>/calendar")
def feed_calendar(resource_type: str) -> tuple[str, int]:
    svc = current_services()
    feed = declared.require_feed(svc.feeds, resource_type, selected_account().sid)
    daily = svc.feeds.daily_enabled([feed.owner])[feed.owner]
    window = coverage.feed_window(feed, daily)
    cov = svc.feeds.coverage([feed.owner])[feed.owner]
    states = coverage.feed_states(window, cov)
    year = _year_arg(window.expired_since or window.first, window.last)
    in_year = {d: s for d, s in states.items() if d.startswith(f"{year}-")}
    return render(
        "calendar.html",
        refresh=_work_in_flight(svc, feed, states),
        page="feeds",
        feed=feed,
        daily=daily,
        window=window,
        year=year,
        years=list(range((window.expired_since or window.first).year, window.last.year + 1)),
        months=year_months(year, states, cov),
        all_counts=coverage.summarise(states)["counts"],
        year_counts=coverage.summarise(in_year)["counts"],
        detail=_detail(states, cov),
        states=coverage.REPORTED_STATES,
    )


@bp.post("/feeds/<resource_type>/days/<day>/retry")
def retry(resource_type: str, day: str) -> Response:
    svc = current_services()
    feed = declared.require_feed(svc.feeds, resource_type, selected_account().sid)
    iso = parse_day(day, "day").isoformat()
    try:
        ok(retry_day(svc, feed, iso, selected_account()).message)
    except (DomainError, TwilioError) as exc:
        fail(f"{iso} was not retried: {exc}")
    target = url_for("console.feed_calendar", resource_type=feed.resource_type, year=iso[:4], day=iso)
    return redirect(f"{target}#detail")


@bp.post("/feeds/<resource_type>/days/<day>/delete")
def delete_day(resource_type: str, day: str) -> Response:
    """The calendar's Delete button: confirmed by a ticked box, then as ``DELETE /api/days/...`` (who: console)."""
    svc = current_services()
    feed = declared.require_feed(svc.feeds, resource_type, selected_account().sid)
    iso = parse_day(day, "day").isoformat()
    if request.form.get("confirm") != "yes":
        fail(f"{iso} was not deleted: tick the box to confirm.")
    else:
        try:
            tombstones.delete_day(svc, feed.resource_type, iso, selected_account(), "console", _reason())
            ok(f"{iso} deleted: a worker deletes its object(s); the relay never fetches it again until restored.")
        except DomainError as exc:
            fail(f"{iso} was not deleted: {exc}")
    return _back_to(feed, iso)


@bp.post("/feeds/<resource_type>/days/<day>/restore")
def restore_day(resource_type: str, day: str) -> Response:
    svc = current_services()
    feed = declared.require_feed(svc.feeds, resource_type, selected_account().sid)
    iso = parse_day(day, "day").isoformat()
    try:
        tombstones.restore_day(svc, feed.resource_type, iso, selected_account())
        ok(f"{iso} restored: missing again, the planner fetches it.")
    except DomainError as exc:
        fail(f"{iso} was not restored: {exc}")
    return _back_to(feed, iso)


def _reason() -> str | None:
    return (request.form.get("reason") or "").strip()[: tombstones.MAX_REASON] or None


def _back_to(feed: Feed, iso: str) -> Response:
    target = url_for("console.feed_calendar", resource_type=feed.resource_type, year=iso[:4], day=iso)
    return redirect(f"{target}#detail")
