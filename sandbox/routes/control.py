"""The control API: ``/_sandbox/*``, unauthenticated, for tests, ``make demo`` and benchmarks.

Never part of Twilio's surface. JSON in and out; errors are ``{"error": "...", "status": 400|404}``.

Control API (no auth; JSON in and out)
    GET  /_sandbox/health            {"status": "ok", "api_url", "files_url", "account_sid"}
    POST /_sandbox/reset             forget jobs, files, links, logs, faults, export configs, quota;
                                     scenario back to defaults -> {"status": "reset"}
    GET|PUT|PATCH /_sandbox/scenario PUT replaces (missing keys take defaults), PATCH merges (``days``
                                     and ``webhook`` key by key). Body/answer:
        {"step_seconds": 0.2, "days_per_step": 10, "error_steps": 2, "default_day_size": 4096,
         "default_outcome": "completed", "link_ttl_seconds": 240, "daily_quota_days": 366, "seed": 0,
         "today": null | "yyyy-mm-dd",
         "days": {"Calls/2026-11-01": {"outcome": "empty_404", "size": 123}, "2026-11-02": "failed"},
         "webhook": {"copies": 1, "drop": false, "sign": true, "body": "form" | "json",
                     "extra_params": {}}}
        outcomes: completed | empty_file | empty_404 | error_then_completed | failed
    GET|PUT /_sandbox/faults         PUT replaces the plan ({} clears it); GET shows remaining counters:
        {"api": {"429": 0, "500": 0, "403": 0, "slow_ms": 0, "retry_after": 1, "only": ["FetchDay", ...],
                 "rate": 0.0, "kinds": ["429", "500"]},
         "files": {"cut": 0, "expired": 0, "500": 0, "slow_ms": 0, "chunk_delay_ms": 0,
                   "cut_at": null | bytes, "rate": 0.0, "kinds": ["cut", "500"]},
         "rate": 0.0, "seed": 0}
        Counters fail the next N matching requests (api order: 429, 500, 403; files: expired, 500, cut);
        ``rate`` (top level, or per section) fails requests at random with a ``seed``-ed generator.
    POST /_sandbox/clock             {"advance": seconds} -> {"offset_seconds": total}; jobs progress
                                     and links age as if that much time had passed.
    GET  /_sandbox/jobs              {"jobs": [view, ...]}; GET /_sandbox/jobs/<sid> -> view, where view =
        {"job_sid", "resource_type", "friendly_name", "start_day", "end_day", "webhook_url",
         "webhook_method", "email", "created_at", "status": submitted|running|final|deleted,
         "final": bool, "deleted": bool, "webhook_fired": bool, "details": [...],
         "days": {"yyyy-mm-dd": {"status", "outcome", "size"}}}
    POST /_sandbox/jobs/<sid>/complete  finish every unfinished day now (webhook fires) -> view
    POST /_sandbox/jobs/<sid>/webhook   one more delivery now -> {"queued": true, "job_sid", "url", "method"}
    GET  /_sandbox/webhooks          {"deliveries": [{"job_sid", "resource_type", "reason", "webhook_url",
        "method", "dropped", "copy", "attempt", "url", "mode", "params", "headers", "body", "at",
        "status_code", "error", "ok"}]}
    GET  /_sandbox/downloads         {"downloads": [{"path", "method", "resource_type", "day", "status",
        "problem", "fault", "size", "bytes_sent", "completed", "started_at", "finished_at"}]}
    GET  /_sandbox/requests          {"requests": [{"method", "path", "query", "operation", "status",
        "fault", "at", "duration_ms"}]}  (/v1 requests only)
    GET  /_sandbox/days/<rt>/<day>   {"resource_type", "day", "source": "file"|"scenario", "exists",
        "outcome", "target", "seed", "job_sid", "size", "sha256", "records"}: the existing file, else
        what the current scenario would produce (size/sha256 null when no file would exist).
"""

from __future__ import annotations

import logging
from datetime import date

from flask import Blueprint, Response, jsonify, request

from sandbox import RESOURCE_TYPES
from sandbox.content import describe_day_file
from sandbox.routes.common import DAY_RE, control_error, ctx, json_body
from sandbox.scenario import Faults, Scenario, ScenarioError

log = logging.getLogger("sandbox.api")
bp = Blueprint("control", __name__, url_prefix="/_sandbox")


@bp.get("/health")
def health() -> Response:
    settings = ctx().settings
    return jsonify(
        {
            "status": "ok",
            "api_url": settings.api_url,
            "files_url": settings.files_url,
            "account_sid": settings.account_sid,
        }
    )


@bp.post("/reset")
def reset() -> Response:
    ctx().store.reset()
    log.info("state reset")
    return jsonify({"status": "reset"})


@bp.route("/scenario", methods=["GET", "PUT", "PATCH"])
def scenario() -> Response:
    store = ctx().store
    if request.method == "PUT":
        store.set_scenario(Scenario.from_json(json_body()))
    elif request.method == "PATCH":
        current = store.get_scenario().to_json()
        patch = json_body()
        for key in ("days", "webhook"):
            if isinstance(patch.get(key), dict):
                patch[key] = {**current[key], **patch[key]}
        store.set_scenario(Scenario.from_json({**current, **patch}))
    return jsonify(store.get_scenario().to_json())


@bp.route("/faults", methods=["GET", "PUT"])
def faults() -> Response:
    store = ctx().store
    if request.method == "PUT":
        store.set_faults(Faults.from_json(json_body()))
    return jsonify(store.get_faults())


@bp.post("/clock")
def clock() -> Response:
    seconds = json_body().get("advance", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ScenarioError("advance must be a number of seconds >= 0")
    return jsonify({"offset_seconds": ctx().store.advance_clock(float(seconds))})


@bp.get("/jobs")
def control_jobs() -> Response:
    return jsonify({"jobs": ctx().store.control_jobs()})


@bp.get("/jobs/<sid>")
def control_job(sid: str) -> Response:
    job = ctx().store.control_job(sid)
    return jsonify(job) if job else control_error(f"no job {sid}", 404)


@bp.post("/jobs/<sid>/complete")
def control_complete(sid: str) -> Response:
    store = ctx().store
    if not store.complete(sid):
        return control_error(f"no job {sid}", 404)
    return jsonify(store.control_job(sid))


@bp.post("/jobs/<sid>/webhook")
def control_redeliver(sid: str) -> Response:
    call = ctx().store.redeliver(sid)
    if call is None:
        return control_error(f"no job {sid} with a webhook", 404)
    ctx().notifier.submit(call)
    return jsonify({"queued": True, "job_sid": sid, "url": call.url, "method": call.method})


@bp.get("/webhooks")
def control_webhooks() -> Response:
    return jsonify({"deliveries": ctx().store.read_log("deliveries")})


@bp.get("/downloads")
def control_downloads() -> Response:
    return jsonify({"downloads": ctx().store.read_log("downloads")})


@bp.get("/requests")
def control_requests() -> Response:
    return jsonify({"requests": ctx().store.read_log("requests")})


@bp.get("/days/<rt>/<day>")
def control_day(rt: str, day: str) -> Response:
    if rt not in RESOURCE_TYPES or not DAY_RE.match(day):
        return control_error("use /_sandbox/days/<ResourceType>/<yyyy-mm-dd>", 404)
    d = date.fromisoformat(day)
    context = ctx()
    exp = context.store.expected_day(rt, d)
    info = (
        describe_day_file(rt, d, exp["target"], exp["seed"], account_sid=context.settings.account_sid)
        if exp["target"] is not None
        else None
    )
    return jsonify(
        {
            "resource_type": rt,
            "day": day,
            **exp,
            "size": info.size if info else None,
            "sha256": info.sha256 if info else None,
            "records": info.records if info else 0,
        }
    )
