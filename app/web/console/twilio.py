"""At Twilio: what Twilio itself holds for the selected account, read live (``app.feeds.at_twilio``): every export job
of a resource type, tracked here or not, with **Track** for the others (``ops.adopt``, as ``relay track``),
and every day file, with whether the bucket has its day and **Copy** for the others
(``daily_exports.copy_listed_day``, as ``relay copy-day``: no quota spent). And a form to submit a one-off job on
the account (``app.jobs.submission``, the API's validation and quota), showing the quota its account family has left
today. An error of a form is shown on the page, next to its field when it names one; nothing is changed."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from app.feeds import at_twilio as twilio_lists
from app.feeds import daily_exports
from app.feeds.coverage import quota_view
from app.jobs import ops, submission
from app.platform import clock
from app.platform.config import RESOURCE_TYPES
from app.platform.errors import DomainError, RequestError
from app.platform.validation import bounded_int, validate_resource_type
from app.services import Services, current_services
from app.twilio.client import TwilioError
from app.web.console.account import selected_account
from app.web.console.blueprint import bp
from app.web.console.web import fail, ok, render

PAGE_SIZE = 50
MAX_PAGE = 100_000
SUBMIT_FIELDS = ("resource_type", "start_day", "end_day", "friendly_name", "email")


def _shown_type() -> str:
    """The resource type shown (``?rt=``; the first one without it; a wrong one is a 400 page)."""
    return validate_resource_type(request.args.get("rt") or RESOURCE_TYPES[0])


def _form_type() -> str:
    """The resource type a form acts on (a RequestError, shown as the action's error, if it is not one)."""
    return validate_resource_type(request.form.get("resource_type"))


def _listed(read: Any) -> tuple[dict[str, Any] | None, str | None]:
    """One of Twilio's lists, or why Twilio did not give it (the rest of the page still works)."""
    try:
        return read(), None
    except TwilioError as exc:
        return None, str(exc)


def _quota(svc: Services) -> dict[str, Any]:
    view = quota_view(svc, clock.utc_today(), selected_account().family)
    return view | {"left": max(0, view["limit"] - view["used_today"])}


def _page(
    status: int = 200, rt: str | None = None, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> Any:
    svc = current_services()
    account, rt = selected_account(), rt or _shown_type()
    jobs_page = bounded_int(request.args, "jobs_page", 0, MAX_PAGE)
    days_page = bounded_int(request.args, "days_page", 0, MAX_PAGE)
    jobs, jobs_error = _listed(lambda: twilio_lists.twilio_jobs(svc, rt, account, jobs_page, PAGE_SIZE))
    days, days_error = _listed(lambda: twilio_lists.twilio_days(svc, rt, account, days_page, PAGE_SIZE))
    return render(
        "twilio.html",
        status=status,
        page="twilio",
        rt=rt,
        resource_types=RESOURCE_TYPES,
        jobs=jobs,
        jobs_error=jobs_error,
        days=days,
        days_error=days_error,
        quota=_quota(svc),
        values=values or {"resource_type": rt},
        errors=errors or {},
    )


@bp.get("/twilio")
def at_twilio() -> Any:
    return _page()


def _back(rt: str | None) -> Response:
    return redirect(url_for("console.at_twilio", rt=rt))


@bp.post("/twilio/track")
def track() -> Response:
    """Track a job Twilio has that this relay does not (made in Twilio's Console, by another tool)."""
    rt = None
    try:
        rt = _form_type()
        job = ops.adopt(current_services(), request.form.get("job_sid", ""), rt, selected_account().sid)
        ok(f"Job {job.job_sid} is tracked: its days are copied as Twilio finishes them.")
    except (DomainError, TwilioError) as exc:
        fail(f"Not tracked: {exc}")
    return _back(rt)


@bp.post("/twilio/copy")
def copy_day() -> Response:
    """Copy one day file Twilio holds that the bucket lacks (no new job at Twilio, no quota)."""
    rt = None
    try:
        rt = _form_type()
        job = daily_exports.copy_listed_day(current_services(), rt, request.form.get("day"), selected_account())
        ok(f"Copy of {rt} {job.start_day} queued (job {job.job_sid}).")
    except (DomainError, TwilioError) as exc:
        fail(f"Not copied: {exc}")
    return _back(rt)


def _field_of(message: str) -> str:
    """The form field an error of app.jobs.submission is about (its messages start with the field's name)."""
    return next((name for name in SUBMIT_FIELDS if message.startswith(name)), "form")


@bp.post("/twilio/submit")
def submit() -> Any:
    """Submit a one-off job on the selected account, as ``POST /api/jobs`` does."""
    svc = current_services()
    values = {name: request.form.get(name, "").strip() for name in SUBMIT_FIELDS}
    body: dict[str, Any] = {k: v for k, v in values.items() if v} | {"account": selected_account().sid}
    try:
        if not values["start_day"] or not values["end_day"]:
            raise RequestError(f"{'start_day' if not values['start_day'] else 'end_day'} is required (YYYY-MM-DD)")
        result = submission.submit(svc, submission.SubmitRequest.from_body(body))
    except (DomainError, TwilioError) as exc:
        status = exc.status if isinstance(exc, DomainError) and exc.status < 500 else 502
        rt = values["resource_type"] if values["resource_type"] in RESOURCE_TYPES else None
        return _page(status, rt, values, {_field_of(str(exc)): str(exc)})
    sids = ", ".join(j.job_sid for j in result.jobs)
    if result.error is not None:
        fail(f"Partly submitted: job(s) {sids} were created and are tracked; the rest failed: {result.error}")
        return _back(result.jobs[0].resource_type)
    ok(f"Submitted: job(s) {sids} at Twilio; their days are copied as Twilio finishes them.")
    return redirect(url_for("console.job", job_sid=result.jobs[0].job_sid))
