"""Jobs: the list with progress (days final / total, bytes copied), state and age; one job with every day, its
state and error, Twilio's last snapshot, and the two actions (requeue failed days, cancel)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from app import job_ops
from app.console import bp
from app.console.web import fail, ok, render
from app.context import current_services
from app.days import job_days
from app.errors import DomainError
from app.registry import JobRecord
from app.twilio_api import TwilioError
from app.validation import parse_day
from app.views import job_view

PAGE_SIZE = 50
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


def _page_arg() -> int:
    raw = request.args.get("page", "0")
    return min(int(raw), 100_000) if raw.isdigit() else 0


@bp.get("/jobs")
def jobs() -> tuple[str, int]:
    svc = current_services()
    page = _page_arg()
    records, total = svc.registry.list_jobs(offset=page * PAGE_SIZE, limit=PAGE_SIZE)
    rows: list[dict[str, Any]] = []
    for job in records:
        view = job_view(svc.registry, job)
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
    )


@bp.get("/jobs/<job_sid>")
def job(job_sid: str) -> tuple[str, int]:
    svc = current_services()
    record = job_ops.require_job(svc, job_sid)
    view = job_view(svc.registry, record)
    view["days"] = every_day(record, view["days"])
    prog = progress(record, view)
    busy = not record.state.final  # a requeue reopens the job
    failed = [d["day"] for d in view["days"] if d["state"] == "failed"]
    return render("job.html", refresh=busy, page="jobs", job=record, view=view, progress=prog, failed_days=failed)


@bp.post("/jobs/<job_sid>/requeue")
def requeue(job_sid: str) -> Response:
    svc = current_services()
    try:
        days = [parse_day(d, "day").isoformat() for d in request.form.getlist("day")]
        if not days:
            fail("Choose at least one failed day to requeue.")
        else:
            done = job_ops.requeue(svc, job_sid, days)
            ok(f"Requeued {len(done)} day(s): {', '.join(done)}." if done else "No failed day to requeue.")
    except (DomainError, TwilioError) as exc:
        fail(f"Not requeued: {exc}")
    return redirect(url_for("console.job", job_sid=job_sid))


@bp.post("/jobs/<job_sid>/cancel")
def cancel(job_sid: str) -> Response:
    svc = current_services()
    if request.form.get("confirm") != "yes":
        fail("Not cancelled: tick the box to confirm that the job is to be deleted at Twilio.")
        return redirect(url_for("console.job", job_sid=job_sid))
    try:
        job_ops.cancel(svc, job_sid)
        ok(f"Job {job_sid} cancelled: deleted at Twilio.")
    except (DomainError, TwilioError) as exc:
        fail(f"Not cancelled: {exc}")
    return redirect(url_for("console.job", job_sid=job_sid))
