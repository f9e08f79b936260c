"""Custom export jobs: CreateExportCustomJob, ListExportCustomJob (per type), FetchJob and DeleteJob (by sid)."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox.routes.common import (
    account_sid,
    bad_param,
    base,
    ctx,
    list_meta,
    not_found,
    paging,
    parse_day,
    resource_type,
    valid_url,
)
from sandbox.state import Job, QuotaExceeded, iso_millis

log = logging.getLogger("sandbox.api")
bp = Blueprint("jobs", __name__)

JOBS_MAX_PAGE_SIZE = 1000
JOB_SID_RE = re.compile(r"^JS[0-9a-fA-F]{32}$")
JOB_ORDER = (
    "resource_type",
    "friendly_name",
    "details",
    "start_day",
    "end_day",
    "job_sid",
    "webhook_url",
    "webhook_method",
    "email",
    "url",
    "job_queue_position",
    "estimated_completion_time",
)


def job_fields(job: Job, now: float, position: int) -> dict[str, Any]:
    """The export_custom_job schema, in the spec's property order."""
    final = job.is_final(now)
    return {
        "friendly_name": job.friendly_name,
        "resource_type": job.resource_type,
        "start_day": job.start_day.isoformat(),
        "end_day": job.end_day.isoformat(),
        "webhook_url": job.webhook_url,
        "webhook_method": job.webhook_method,
        "email": job.email,
        "job_sid": job.sid,
        "details": job.details(now),
        "job_queue_position": "0" if final or job.deleted_at is not None else str(position),
        "estimated_completion_time": iso_millis(job.wall(job.completion_mono())),
    }


def _webhook_fields(form: Any) -> tuple[str | None, str | None]:
    webhook_url = form.get("WebhookUrl") or None
    webhook_method = (form.get("WebhookMethod") or "").upper() or None
    if bool(webhook_url) != bool(webhook_method):
        raise bad_param("WebhookUrl and WebhookMethod must be supplied together")
    if webhook_url and not valid_url(webhook_url):
        raise bad_param(f"Invalid WebhookUrl: {webhook_url!r} is not an absolute http(s) URL")
    if webhook_method and webhook_method not in ("GET", "POST"):
        raise bad_param(f"Invalid WebhookMethod: {form.get('WebhookMethod')!r}; use GET or POST")
    return webhook_url, webhook_method


@bp.post("/v1/Exports/<rt>/Jobs", endpoint="CreateExportCustomJob")
def create_job(rt: str) -> Response:
    rt = resource_type(rt)
    store = ctx().store
    form = request.form
    for name in ("StartDay", "EndDay", "FriendlyName"):
        if not form.get(name, "").strip():
            raise bad_param(f"Missing required parameter {name} in the post body")
    start = parse_day(form["StartDay"], "StartDay")
    end = parse_day(form["EndDay"], "EndDay")
    latest = store.today() - timedelta(days=2)
    if end > latest:
        raise bad_param(
            f"Invalid EndDay {end.isoformat()}: it must be at least 2 days before the current UTC day "
            f"(latest allowed: {latest.isoformat()})"
        )
    if start > end:
        raise bad_param(f"Invalid StartDay {start.isoformat()}: it must not be after EndDay {end.isoformat()}")
    webhook_url, webhook_method = _webhook_fields(form)
    email = form.get("Email") or None
    if email and "@" not in email:
        raise bad_param(f"Invalid Email: {email!r}")
    try:
        job = store.create_job(account_sid(), rt, start, end, form["FriendlyName"], webhook_url, webhook_method, email)
    except QuotaExceeded as exc:
        raise bad_param(str(exc)) from None
    log.info("job %s created: %s %s..%s", job.sid, rt, start, end)
    with store.transaction() as now:
        body = job_fields(job, now, store.queue_positions(account_sid(), now).get(job.sid, 1))
    body["resource_type"] = None  # quirk seen in a real 2020 capture: a fresh job answers these as null
    body["details"] = None
    resp = jsonify(body)
    resp.status_code = 201
    return resp


@bp.get("/v1/Exports/<rt>/Jobs", endpoint="ListExportCustomJob")
def list_jobs(rt: str) -> Response:
    rt = resource_type(rt)
    store = ctx().store
    page, page_size, offset = paging(JOBS_MAX_PAGE_SIZE)
    with store.transaction() as now:
        jobs = store.jobs_of(account_sid(), rt)
        queue = store.queue_positions(account_sid(), now)
        items = [job_fields(j, now, queue.get(j.sid, 0)) for j in jobs[offset : offset + page_size]]
    return jsonify({"jobs": items, "meta": list_meta("jobs", page, page_size, offset, len(jobs))})


@bp.get("/v1/Exports/Jobs/<sid>", endpoint="FetchJob")
def fetch_job(sid: str) -> Response:
    if not JOB_SID_RE.match(sid):
        raise not_found()
    store = ctx().store
    with store.transaction() as now:
        job = store.job(account_sid(), sid)
        if job is None:
            raise not_found()
        fields = job_fields(job, now, store.queue_positions(account_sid(), now).get(sid, 0))
    # The job schema's property order (it also has `url`).
    fields["url"] = f"{base()}/v1/Exports/Jobs/{sid}"
    return jsonify({k: fields[k] for k in JOB_ORDER})


@bp.delete("/v1/Exports/Jobs/<sid>", endpoint="DeleteJob")
def delete_job(sid: str) -> Response:
    if not JOB_SID_RE.match(sid) or not ctx().store.delete_job(account_sid(), sid):
        raise not_found()
    log.info("job %s deleted", sid)
    return Response(status=204)
