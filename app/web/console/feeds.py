"""Feeds and daily exports: view them, add or change a feed, stop one, turn Twilio's daily export on or off.
Every change goes through the API's own functions (``app.feeds.declared``, ``app.feeds.daily_exports``), so the
validation and
the SYNC_FEEDS rule are the API's; an error is shown next to the field it names, nothing being stored."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from app.feeds import coverage, daily_exports, declared
from app.platform.config import RESOURCE_TYPES
from app.platform.errors import DomainError, RequestError
from app.services import Services, current_services
from app.twilio.accounts import owner_of
from app.twilio.client import TwilioError
from app.web.console.account import selected_account
from app.web.console.blueprint import bp
from app.web.console.web import ok, render

FIELDS = ("resource_type", "since", "until", "enabled", "retain_days")


def feeds_model(svc: Services) -> dict[str, Any]:
    sid = selected_account().sid
    report = coverage.report(svc, account_sid=sid)["feeds"]
    owners = [owner_of(rt, sid) for rt in RESOURCE_TYPES]
    daily = svc.feeds.daily_enabled(owners)
    return {
        "feeds": report,
        "daily": {rt: daily[owner_of(rt, sid)] for rt in RESOURCE_TYPES},
        "resource_types": RESOURCE_TYPES,
    }


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    svc = current_services()
    model = feeds_model(svc)
    edit = request.args.get("edit")
    values = extra.pop("values", None)
    if values is None:
        shown = next((f for f in model["feeds"] if f["resource_type"] == edit), None)
        values = _values_of(shown) if shown else {"resource_type": edit or "", "enabled": True}
    busy = any(f["counts"]["in_flight"] for f in model["feeds"])
    return render(
        "feeds.html",
        status=status,
        refresh=busy and status == 200,
        page="feeds",
        values=values,
        errors=extra.pop("errors", {}),
        daily_error=extra.pop("daily_error", None),
        **model,
    )


def _values_of(feed: dict[str, Any]) -> dict[str, Any]:
    return {
        "resource_type": feed["resource_type"],
        "since": feed["since"],
        "until": feed["until"] or "",
        "enabled": feed["enabled"],
        "retain_days": feed.get("retain_days") or "",
    }


@bp.get("/feeds")
def feeds_page() -> tuple[str, int]:
    return _page()


def _field_of(message: str) -> str:
    """The form field an error message of app.feeds.declared is about (its messages start with the field's name)."""
    for name in FIELDS:
        if message.startswith(name):
            return name
    return "form"


@bp.post("/feeds")
def save_feed() -> Response | tuple[str, int]:
    form = request.form
    values = {
        "resource_type": form.get("resource_type", ""),
        "since": form.get("since", "").strip(),
        "until": form.get("until", "").strip(),
        "enabled": form.get("enabled") == "on",
        "retain_days": form.get("retain_days", "").strip(),
    }
    body: dict[str, Any] = {"since": values["since"] or None, "enabled": values["enabled"]}
    if values["until"]:
        body["until"] = values["until"]
    retain = str(values["retain_days"])
    if retain:
        body["retain_days"] = int(retain) if retain.isdigit() else retain  # not a number: the 400 names the field
    try:
        feed = declared.feed_from_body(values["resource_type"], body, selected_account().sid)
        declared.put_feed(current_services().feeds, feed)
    except DomainError as exc:
        return _page(exc.status if exc.status < 500 else 400, values=values, errors={_field_of(str(exc)): str(exc)})
    ok(f"The {feed.resource_type} feed is saved: from {feed.since}" + (f" to {feed.until}." if feed.until else "."))
    return redirect(url_for("console.feeds_page"))


@bp.post("/feeds/<resource_type>/delete")
def delete_feed(resource_type: str) -> Response | tuple[str, int]:
    try:
        feed = declared.delete_feed(current_services().feeds, resource_type, selected_account().sid)
    except DomainError as exc:
        return _page(exc.status if exc.status < 500 else 400, errors={"list": str(exc)})
    ok(f"The {feed.resource_type} feed is stopped; what was copied stays in the bucket.")
    return redirect(url_for("console.feeds_page"))


@bp.post("/daily/<resource_type>")
def set_daily(resource_type: str) -> Response | tuple[str, int]:
    wanted = request.form.get("enabled")
    try:
        if wanted not in ("true", "false"):
            raise RequestError("enabled must be true or false")
        shown = daily_exports.set_enabled(current_services(), resource_type, wanted == "true", selected_account())
    except (DomainError, TwilioError) as exc:
        status = exc.status if isinstance(exc, DomainError) and exc.status < 500 else 502
        return _page(status, daily_error={"resource_type": resource_type, "message": str(exc)})
    ok(f"Twilio's daily export of {shown['resource_type']} is {'on' if shown['enabled'] else 'off'}.")
    return redirect(url_for("console.feeds_page"))
