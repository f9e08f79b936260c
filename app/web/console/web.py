"""What every console page shares: rendering with the common context, formatting helpers, flash messages and
HTML error pages (the app's own handlers answer JSON, meant for the API)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from flask import flash, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from app.platform import clock
from app.platform.errors import DomainError, NotFound
from app.services import current_services
from app.twilio.accounts import Account, accounts_view
from app.twilio.client import TwilioError, TwilioUnavailable
from app.web.console.account import selected_account
from app.web.console.auth import csrf_token, signed_in
from app.web.console.blueprint import bp

log = logging.getLogger(__name__)

NONE = "\N{EN DASH}"  # shown for a value that does not exist (yet)
REFRESH_SECONDS = 3  # pages showing work in flight reload this often (console.js; <noscript> meta refresh)
# A letter per state, so that colour is never the only carrier (coverage states; pending/copying: a job's days)
STATE_LETTERS = {
    "copied": "C",
    "empty": "E",
    "in_flight": "I",
    "failed": "F",
    "corrupt": "X",
    "missing": "M",
    "deleted": "D",
    "expired": "R",
    "outside": "\N{MIDDLE DOT}",
    "pending": "P",
    "copying": "I",
}
STATE_LABELS = {
    "copied": "copied",
    "empty": "empty (no records)",
    "in_flight": "in flight",
    "failed": "failed",
    "corrupt": "corrupt (the bucket's object changed)",
    "missing": "missing",
    "deleted": "deleted on purpose (never fetched again)",
    "expired": "expired (older than the feed's retain_days)",
    "outside": "outside the feed's window",
    "pending": "pending",
    "copying": "copying",
}


def render(template: str, status: int = 200, refresh: bool = False, **context: Any) -> tuple[str, int]:
    """A page; ``refresh``: work is in flight, so the page reloads itself every REFRESH_SECONDS."""
    body = render_template(f"console/{template}", refresh=REFRESH_SECONDS if refresh else 0, **context)
    return body, status


def ok(message: str) -> None:
    flash(message, "ok")


def fail(message: str) -> None:
    flash(message, "error")


# Where the account selector leads: the same list page for another account; from a calendar or a job (which
# may not exist in the other account), that account's feeds or jobs.
SELECTOR_TARGETS = {
    "console.overview": "console.overview",
    "console.jobs": "console.jobs",
    "console.job": "console.jobs",
    "console.feeds_page": "console.feeds_page",
    "console.feed_calendar": "console.feeds_page",
    "console.at_twilio": "console.at_twilio",
}


def shown_account() -> Account:
    """The selected account, or TWILIO_ACCOUNT_SID's on the 404 page of an account not served."""
    try:
        return selected_account()
    except NotFound:
        return current_services().accounts.primary


def account_choices() -> list[dict[str, Any]]:
    """Every account for the selector (signed in only): SID, label, state in words; never a credential."""
    if not signed_in():
        return []
    svc = current_services()
    try:
        return list(accounts_view(svc)["accounts"])
    except redis.RedisError:  # states are in Redis; the selector still works without them
        return [a.public_view() | {"state": "state unknown (Redis is down)"} for a in svc.accounts.all()]


@bp.context_processor
def helpers() -> dict[str, Any]:
    return {
        "csrf_token": csrf_token,
        "signed_in": signed_in,
        "account": shown_account(),
        "accounts": account_choices(),
        "selector_action": url_for(SELECTOR_TARGETS.get(request.endpoint or "", "console.overview")),
        "fmt_bytes": fmt_bytes,
        "fmt_age": fmt_age,
        "fmt_seconds": fmt_seconds,
        "fmt_time": fmt_time,
        "state_letters": STATE_LETTERS,
        "state_labels": STATE_LABELS,
    }


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return NONE
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def fmt_seconds(seconds: float | None) -> str:
    """A duration as people say it: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    if seconds is None:
        return NONE
    s = int(max(0, seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def fmt_age(ts: float | None) -> str:
    return NONE if not ts else f"{fmt_seconds(clock.now() - ts)} ago"


def fmt_time(ts: float | None) -> str:
    if not ts:
        return NONE
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return render("error.html", status=status, title=title, detail=detail)


@bp.errorhandler(DomainError)
def domain_error(exc: DomainError) -> tuple[str, int]:
    return _error_page(exc.status, exc.title, str(exc))


@bp.errorhandler(TwilioError)
def twilio_error(exc: TwilioError) -> tuple[str, int]:
    log.warning("console: Twilio answered unexpectedly: %s", exc)
    status = 503 if isinstance(exc, TwilioUnavailable) else 502
    return _error_page(status, "Twilio did not answer as expected", str(exc))


@bp.errorhandler(redis.RedisError)
def redis_down(exc: redis.RedisError) -> tuple[str, int]:
    log.error("console: Redis unavailable: %s", exc)
    return _error_page(503, "storage unavailable", "Redis is not reachable; retry in a moment.")


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> tuple[str, int]:
    return _error_page(exc.code or 500, exc.name or "error", exc.description or "")
