"""Jobs: the list with progress (days final / total, bytes copied), state and age; one job with every day, its
state and error, Twilio's last snapshot, and the two actions (requeue failed days, cancel).

Accounts: the list shows the selected account's jobs (the header says which), or every account's with ``?all=1``;
with more than one account each row names its account. A job's pages show the job's own account (``pin_account``)
and its actions act on that account only: a form naming another account (``?account=``) is refused, nothing done.
The filtered list is ``JobStore.list_jobs(account_sid=...)``, as for the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from app.jobs import ops
from app.jobs.documents import job_view
from app.jobs.records import JobRecord
from app.platform.days import job_days
from app.platform.errors import Conflict, DomainError
from app.platform.validation import bounded_int, parse_day
from app.services import current_services
from app.twilio.client import TwilioError
from app.web.console.account import ACCOUNT_ARG, pin_account, selected_account
from app.web.console.blueprint import bp
from app.web.console.web import fail, ok, render

PAGE_SIZE = 50
MAX_PAGE = 100_000
FINAL_DAY_STATES = ("copied", "empty", "failed")


@dataclass(frozen=True)
class Progress:
    """How far a job is: days final (copied, empty or failed) of the days it covers, and bytes copied."""

    total: int
    final: int
    failed: int
    copied_bytes: int

    @property
    def percent(self) -> int:
        return round(100 * self.final / self.total) if self.total else 100

    @property
    def text(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.final} of {self.total} days final{failed}"


def progress(job: JobRecord, view: dict[str, Any]) -> Progress:
    days = view["days"]
    return Progress(
        total=len(job_days(job.start_day, job.end_day)),
        final=sum(1 for d in days if d["state"] in FINAL_DAY_STATES),
        failed=sum(1 for d in days if d["state"] == "failed"),
        copied_bytes=sum(d["size"] or 0 for d in days if d["state"] == "copied"),
    )


def every_day(job: JobRecord, days: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The job's day records plus, as ``pending``, the days Twilio has not reported yet: every day of the job."""
    known = {d["day"]: d for d in days}
    unknown = {"state": "pending", "twilio_status": None, "size": None, "records": None, "attempts": 0, "error": None}
    return [known.get(day) or {"day": day} | unknown for day in job_days(job.start_day, job.end_day)]


@bp.get("/jobs")
def jobs() -> tuple[str, int]:
    svc = current_services()
    page = bounded_int(request.args, "page", 0, MAX_PAGE)  # a bad number is a 400 page
    shown = selected_account()  # an account not served is a 404 here too, even for every account's jobs
    several = len(svc.accounts.all()) > 1
    every = not several or request.args.get("all") == "1"
    if every:
        records, total = svc.jobs.list_jobs(offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    else:
        records, total = svc.jobs.list_jobs(page * PAGE_SIZE, PAGE_SIZE, account_sid=shown.sid)
    rows: list[dict[str, Any]] = []
    for job in records:
        view = job_view(svc.days, job)
        rows.append({"job": job, "view": view, "progress": progress(job, view)})
    busy = any(not r["job"].state.final for r in rows)
    return render(
        "jobs.html",
        refresh=busy,
        page="jobs",
        rows=rows,
        total=total,
        page_no=page,
        has_more=(page + 1) * PAGE_SIZE < total,
        several=several,
        every=every and several,
        names={a.sid: a.name for a in svc.accounts.all()},
    )


def _job_of_selection(job_sid: str) -> JobRecord:
    """The job, if it belongs to the account the form names (``?account=``); its account is shown from here on."""
    record = ops.require_job(current_services(), job_sid)
    if request.args.get(ACCOUNT_ARG) and selected_account().sid != record.account_sid:
        raise Conflict(f"job {job_sid} belongs to account {record.account_sid}, not {selected_account().name}")
    pin_account(record.account_sid)
    return record


@bp.get("/jobs/<job_sid>")
def job(job_sid: str) -> tuple[str, int]:
    svc = current_services()
    record = ops.require_job(svc, job_sid)
    pin_account(record.account_sid)  # whichever account the link came from: the job's own
    view = job_view(svc.days, record)
    view["days"] = every_day(record, view["days"])
    prog = progress(record, view)
    busy = not record.state.final  # a requeue reopens the job
    failed = [d["day"] for d in view["days"] if d["state"] == "failed"]
    return render("job.html", refresh=busy, page="jobs", job=record, view=view, progress=prog, failed_days=failed)


@bp.post("/jobs/<job_sid>/requeue")
def requeue(job_sid: str) -> Response:
    svc = current_services()
    _job_of_selection(job_sid)
    try:
        days = [parse_day(d, "day").isoformat() for d in request.form.getlist("day")]
        if not days:
            fail("Choose at least one failed day to requeue.")
        else:
            done = ops.requeue(svc, job_sid, days)
            ok(f"Requeued {len(done)} day(s): {', '.join(done)}." if done else "No failed day to requeue.")
    except (DomainError, TwilioError) as exc:
        fail(f"Not requeued: {exc}")
    return redirect(url_for("console.job", job_sid=job_sid))


@bp.post("/jobs/<job_sid>/cancel")
def cancel(job_sid: str) -> Response:
    svc = current_services()
    _job_of_selection(job_sid)
    if request.form.get("confirm") != "yes":
        fail("Not cancelled: tick the box to confirm that the job is to be deleted at Twilio.")
        return redirect(url_for("console.job", job_sid=job_sid))
    try:
        ops.cancel(svc, job_sid)
        ok(f"Job {job_sid} cancelled: deleted at Twilio.")
    except (DomainError, TwilioError) as exc:
        fail(f"Not cancelled: {exc}")
    return redirect(url_for("console.job", job_sid=job_sid))
