"""The control API: ``/_sandbox/*``, unauthenticated, for tests, ``make demo`` and benchmarks.

Never part of Twilio's surface. JSON in and out; errors are ``{"error": "...", "status": 400|404}``.
``?account=AC…`` (where shown) picks an account; without it, the default account (the one of
``--account-sid``, see GET /_sandbox/health).

Control API (no auth; JSON in and out)
    GET  /_sandbox/health            {"status": "ok", "api_url", "files_url", "account_sid"}
    POST /_sandbox/reset             forget jobs, files, links, logs, faults, export configs, quota,
                                     added accounts (the default one gets its start-up credentials
                                     back); clock back to real time; scenario back to defaults
                                     -> {"status": "reset"}
    GET|PUT|PATCH /_sandbox/scenario PUT replaces (missing keys take defaults), PATCH merges (``days``,
                                     ``webhook`` and ``daily_webhook`` key by key). Body/answer:
        {"step_seconds": 0.2, "days_per_step": 10, "error_steps": 2, "default_day_size": 4096,
         "default_outcome": "completed", "link_ttl_seconds": 240, "daily_quota_days": 366, "seed": 0,
         "today": "yyyy-mm-dd",
         "days": {"Calls/2026-11-01": {"outcome": "empty_404", "size": 123}, "2026-11-02": "failed"},
         "webhook": {"copies": 1, "drop": false, "sign": true, "body": "form" | "json",
                     "extra_params": {}},
         "editions": true, "daily_delay_seconds": 0,
         "daily_webhook": {"copies": 1, "drop": false, "sign": true, "body": "form", "extra_params": {},
                           "delay_seconds": 0, "drop_days": ["yyyy-mm-dd"],
                           "days": {"yyyy-mm-dd": {"copies": 3, "drop": false, "delay_seconds": 60}}}}
        outcomes: completed | empty_file | empty_404 | error_then_completed | failed
        ``today`` is the clock's day (read-only in answers). Given in a PUT or PATCH body, it sets the
        clock as POST /_sandbox/clock {"today"} does; left out (or null), the clock is not touched.
        ``editions``: whether accounts may enable ExportConfiguration (an account's own ``editions``
        wins). ``daily_delay_seconds``: how long after midnight a daily export's file appears.
        ``daily_webhook``: delivery of daily-export webhooks; ``delay_seconds`` after the file,
        ``drop_days`` never sent, ``days`` per exported day.
    GET|PUT /_sandbox/faults         PUT replaces the plan ({} clears it); GET shows remaining counters:
        {"api": {"429": 0, "500": 0, "403": 0, "slow_ms": 0, "retry_after": 1, "only": ["FetchDay", ...],
                 "rate": 0.0, "kinds": ["429", "500"]},
         "files": {"cut": 0, "expired": 0, "500": 0, "slow_ms": 0, "chunk_delay_ms": 0,
                   "cut_at": null | bytes, "rate": 0.0, "kinds": ["cut", "500"]},
         "rate": 0.0, "seed": 0}
        Counters fail the next N matching requests (api order: 429, 500, 403; files: expired, 500, cut);
        ``rate`` (top level, or per section) fails requests at random with a ``seed``-ed generator.
        API faults hit every authenticated request on Twilio's paths (/v1 and /2010-04-01).
    GET  /_sandbox/clock             {"now": "yyyy-mm-ddTHH:MM:SS.mmmZ", "today": "yyyy-mm-dd",
                                     "offset_seconds": elapsed time added, "wall_offset_seconds": ...}
    POST /_sandbox/clock             at most one of
                                       {"advance": seconds >= 0}   let that much time pass
                                       {"advance_days": n >= 0}    the same, n * 86400 seconds
                                       {"today": "yyyy-mm-dd"}     now = 00:00:00.000 UTC of that day
                                       {"now": "yyyy-mm-ddTHH:MM:SS[.fff][Z]"}  now = that UTC instant
                                     -> the GET answer. Moving forward is elapsed time: jobs progress,
                                     links age, and every midnight crossed runs the daily exports
                                     (see sandbox.state). Moving back only relabels the calendar.
                                     "Today" names the days: EndDay <= today-2, the quota day,
                                     create_date; it follows real time between moves.
    GET  /_sandbox/quota?account=    {"family": parent sid, "limit": daily_quota_days, "today",
                                     "used_today", "days": {"yyyy-mm-dd": requested days}}: one counter
                                     per family (a parent and its subaccounts) and simulated UTC day.
    GET  /_sandbox/jobs[?account=]   {"jobs": [view, ...]} (every account's without ?account=);
                                     GET /_sandbox/jobs/<sid> -> view, where view =
        {"job_sid", "account_sid", "resource_type", "friendly_name", "start_day", "end_day",
         "webhook_url", "webhook_method", "email", "created_at", "status": submitted|running|final|deleted,
         "final": bool, "deleted": bool, "webhook_fired": bool, "details": [...],
         "days": {"yyyy-mm-dd": {"status", "outcome", "size"}}}
    POST /_sandbox/jobs/<sid>/complete  finish every unfinished day now (webhook fires) -> view
    POST /_sandbox/jobs/<sid>/webhook   one more delivery now -> {"queued": true, "job_sid", "url", "method"}
    GET  /_sandbox/webhooks          {"deliveries": [{"kind": "job"|"daily", "account_sid", "job_sid",
        "day", "resource_type", "reason", "webhook_url", "method", "dropped", "copy", "attempt", "url",
        "mode", "params", "headers", "body", "at", "status_code", "error", "ok"}]}
        (``job_sid`` null for daily ones, ``day`` null for job ones; a dropped one has copy 0)
    GET  /_sandbox/daily             {"exports": [{"account_sid", "resource_type", "day", "outcome",
        "generated_at", "size" (null: no file), "webhook": null | {"url", "method", "delay_seconds",
        "dropped"}}]}: every daily auto-export generated, in order.
    GET  /_sandbox/configuration[?account=]  {"account_sid", "configurations": {rt: {"enabled",
                                     "webhook_url", "webhook_method"}}}
    PUT  /_sandbox/configuration/<rt>[?account=]  {"enabled"?: bool, "webhook_url"?: str,
                                     "webhook_method"?: "GET"|"POST"|""} -> that rt's configuration.
                                     Test set-up: the Editions rule of the /v1 endpoint is not applied.
    GET  /_sandbox/downloads         {"downloads": [{"path", "method", "resource_type", "day", "status",
        "problem", "fault", "size", "bytes_sent", "completed", "started_at", "finished_at"}]}
    GET  /_sandbox/requests          {"requests": [{"method", "path", "query", "operation", "account_sid",
        "status", "fault", "at", "duration_ms"}]}  (/v1 and /2010-04-01 requests only)
    GET  /_sandbox/days/<rt>/<day>[?account=]  {"resource_type", "day", "source": "file"|"scenario",
        "exists", "outcome", "target", "seed", "job_sid", "size", "sha256", "records"}: the existing
        file, else what the current scenario would produce (size/sha256 null when no file would exist).

Accounts (see sandbox.accounts for the model; ``view`` = {"sid", "friendly_name", "owner_account_sid",
"parent_sid", "status", "auth_token", "secondary_auth_token", "api_keys": [{"sid", "secret"}],
"revoked", "editions", "default"})
    GET  /_sandbox/accounts          {"accounts": [view, ...]}
    POST /_sandbox/accounts          {"sid"?, "auth_token"?, "friendly_name"?, "editions"?,
                                     "parent_sid"?} -> 201 view: a main account, or a subaccount of
                                     ``parent_sid`` (which must be a main account)
    POST /_sandbox/accounts/<sid>/subaccounts  the same body without parent_sid -> 201 view
    GET  /_sandbox/accounts/<sid>    view
    PATCH /_sandbox/accounts/<sid>   {"status"?: "active"|"suspended"|"closed", "friendly_name"?,
                                     "editions"?: bool|null} -> view
    POST /_sandbox/accounts/<sid>/rotate   {"keep_secondary"?: false} -> view with a new auth token;
                                     the old one stays valid as the secondary only if keep_secondary
    POST /_sandbox/accounts/<sid>/revoke   every credential of the account is refused (401) -> view
    POST /_sandbox/accounts/<sid>/restore  undo revoke -> view
    POST /_sandbox/accounts/<sid>/keys     {"sid"?: "SK…", "secret"?} -> 201 {"sid", "secret", "account_sid"}
    DELETE /_sandbox/accounts/<sid>/keys/<key_sid>  -> {"deleted": true} (404 if no such key)
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify, request

from sandbox import RESOURCE_TYPES
from sandbox.accounts import UnknownAccount
from sandbox.clock import DAY_SECONDS
from sandbox.content import describe_day_file
from sandbox.routes.common import DAY_RE, control_error, ctx, json_body, valid_url
from sandbox.scenario import Faults, Scenario, ScenarioError

log = logging.getLogger("sandbox.api")
bp = Blueprint("control", __name__, url_prefix="/_sandbox")

MERGED_KEYS = ("days", "webhook", "daily_webhook")


@bp.errorhandler(UnknownAccount)
def _unknown_account(exc: UnknownAccount) -> Response:
    return control_error(f"no account {exc.args[0] if exc.args else ''}", 404)


def picked_account() -> str:
    """``?account=`` if given (it must exist), else the default account."""
    sid = request.args.get("account") or ctx().store.account_sid
    ctx().store.account_view(sid)  # UnknownAccount -> 404
    return sid


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
        current = store.scenario_json()
        current.pop("today")  # only a "today" in the patch itself moves the clock
        patch = json_body()
        for key in MERGED_KEYS:
            if isinstance(patch.get(key), dict):
                patch[key] = {**current[key], **patch[key]}
        store.set_scenario(Scenario.from_json({**current, **patch}))
    return jsonify(store.scenario_json())


@bp.route("/faults", methods=["GET", "PUT"])
def faults() -> Response:
    store = ctx().store
    if request.method == "PUT":
        store.set_faults(Faults.from_json(json_body()))
    return jsonify(store.get_faults())


def _number(body: dict[str, Any], key: str, *, integer: bool = False) -> float:
    value = body[key]
    kinds = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        raise ScenarioError(f"{key} must be {'an integer' if integer else 'a number'} >= 0")
    return float(value)


def _instant(value: Any) -> datetime:
    """A naive UTC datetime from ``yyyy-mm-ddTHH:MM:SS[.fff][Z|+00:00]``."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ScenarioError("now must be yyyy-mm-ddTHH:MM:SS[.fff][Z]") from None
    if parsed.utcoffset() not in (None, timedelta(0)):
        raise ScenarioError("now must be in UTC")
    return parsed.replace(tzinfo=None)


@bp.route("/clock", methods=["GET", "POST"])
def clock() -> Response:
    store = ctx().store
    if request.method == "GET":
        return jsonify(store.clock_view())
    body = json_body()
    moves = set(body) & {"advance", "advance_days", "today", "now"}
    if set(body) - moves or len(moves) > 1:
        raise ScenarioError("clock takes one of advance, advance_days, today, now")
    if "advance" in body:
        return jsonify(store.move_clock(advance=_number(body, "advance")))
    if "advance_days" in body:
        return jsonify(store.move_clock(advance=_number(body, "advance_days", integer=True) * DAY_SECONDS))
    if "today" in body:
        if not isinstance(body["today"], str) or not DAY_RE.match(body["today"]):
            raise ScenarioError("today must be yyyy-mm-dd")
        try:
            day = date.fromisoformat(body["today"])
        except ValueError:
            raise ScenarioError("today must be a valid date") from None
        return jsonify(store.move_clock(wall=datetime.combine(day, datetime.min.time())))
    if "now" in body:
        return jsonify(store.move_clock(wall=_instant(body["now"])))
    return jsonify(store.clock_view())


@bp.get("/quota")
def quota() -> Response:
    return jsonify(ctx().store.quota_view(picked_account()))


@bp.get("/jobs")
def control_jobs() -> Response:
    account = picked_account() if request.args.get("account") else None
    return jsonify({"jobs": ctx().store.control_jobs(account)})


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


@bp.get("/daily")
def control_daily() -> Response:
    return jsonify({"exports": ctx().store.read_log("dailies")})


@bp.get("/configuration")
def control_configuration() -> Response:
    sid = picked_account()
    return jsonify({"account_sid": sid, "configurations": ctx().store.configs_of(sid)})


@bp.put("/configuration/<rt>")
def control_set_configuration(rt: str) -> Response:
    if rt not in RESOURCE_TYPES:
        return control_error(f"unknown resource type {rt}", 404)
    changes = json_body()
    if set(changes) - {"enabled", "webhook_url", "webhook_method"}:
        raise ScenarioError("configuration takes enabled, webhook_url, webhook_method")
    if "enabled" in changes and not isinstance(changes["enabled"], bool):
        raise ScenarioError("enabled must be true or false")
    url = changes.get("webhook_url", "")
    if not isinstance(url, str) or (url and not valid_url(url)):
        raise ScenarioError("webhook_url must be '' or an absolute http(s) URL")
    if changes.get("webhook_method", "") not in ("", "GET", "POST"):
        raise ScenarioError("webhook_method must be '', 'GET' or 'POST'")
    return jsonify(ctx().store.update_config(picked_account(), rt, changes, check_editions=False))


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
    sid = picked_account()
    exp = ctx().store.expected_day(sid, rt, d)
    info = describe_day_file(rt, d, exp["target"], exp["seed"], account_sid=sid) if exp["target"] is not None else None
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


# ---- accounts ----------------------------------------------------------------------------------------
@bp.route("/accounts", methods=["GET", "POST"])
def accounts() -> Response:
    store = ctx().store
    if request.method == "GET":
        return jsonify({"accounts": store.account_views()})
    body = json_body()
    parent = body.pop("parent_sid", None)
    if parent is not None and not isinstance(parent, str):
        raise ScenarioError("parent_sid must be an account sid")
    resp = jsonify(store.add_account(body, parent))
    resp.status_code = 201
    return resp


@bp.post("/accounts/<sid>/subaccounts")
def add_subaccount(sid: str) -> Response:
    resp = jsonify(ctx().store.add_account(json_body(), sid))
    resp.status_code = 201
    return resp


@bp.route("/accounts/<sid>", methods=["GET", "PATCH"])
def account(sid: str) -> Response:
    store = ctx().store
    if request.method == "PATCH":
        return jsonify(store.update_account(sid, json_body()))
    return jsonify(store.account_view(sid))


@bp.post("/accounts/<sid>/rotate")
def rotate(sid: str) -> Response:
    keep = json_body().get("keep_secondary", False)
    if not isinstance(keep, bool):
        raise ScenarioError("keep_secondary must be true or false")
    return jsonify(ctx().store.rotate_token(sid, keep))


@bp.post("/accounts/<sid>/revoke")
def revoke(sid: str) -> Response:
    return jsonify(ctx().store.set_revoked(sid, True))


@bp.post("/accounts/<sid>/restore")
def restore(sid: str) -> Response:
    return jsonify(ctx().store.set_revoked(sid, False))


@bp.post("/accounts/<sid>/keys")
def add_key(sid: str) -> Response:
    resp = jsonify(ctx().store.add_api_key(sid, json_body()))
    resp.status_code = 201
    return resp


@bp.delete("/accounts/<sid>/keys/<key_sid>")
def delete_key(sid: str, key_sid: str) -> Response:
    if not ctx().store.delete_api_key(sid, key_sid):
        return control_error(f"no API key {key_sid} on {sid}", 404)
    return jsonify({"deleted": True})
