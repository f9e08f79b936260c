"""The API listener: Twilio BulkExports v1 under /v1 (Basic auth) and the control API under /_sandbox.

Field lists follow the OpenAPI schemas exactly (tests cross-check them against Twilio's spec file).
Every /v1 error is Twilio's JSON shape ``{code, message, more_info, status}``; control errors are
``{"error": "...", "status": 400|404}``.

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

import hmac
import logging
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox import RESOURCE_TYPES
from sandbox.content import describe_day_file
from sandbox.scenario import Faults, Scenario, ScenarioError
from sandbox.state import Job, QuotaExceeded, Store, iso_millis
from sandbox.webhooks import Notifier

log = logging.getLogger("sandbox.api")

DAYS_MAX_PAGE_SIZE = 400
JOBS_MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_JOB_SID_RE = re.compile(r"^JS[0-9a-fA-F]{32}$")
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
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Accept, Authorization, Content-Type, If-Match, If-Modified-Since, "
    "If-None-Match, If-Unmodified-Since, Idempotency-Key",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Expose-Headers": "ETag, Twilio-Request-Id",
}


@dataclass
class ApiSettings:
    """Credentials and the public base URLs (known once the listeners are bound)."""

    account_sid: str
    auth_token: str
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    api_url: str = ""
    files_url: str = ""


class TwilioError(Exception):
    """Raised by handlers; rendered as Twilio's error JSON."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def twilio_error_response(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    resp = jsonify(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )
    resp.status_code = status
    resp.headers.update(headers or {})
    return resp


def not_found() -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {request.path} was not found")


def bad_param(message: str) -> TwilioError:
    return TwilioError(400, 20001, message)


def _parse_day(value: str, name: str) -> date:
    if not _DAY_RE.match(value):
        raise bad_param(f"Invalid {name}: {value!r} is not a date in the format yyyy-mm-dd")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_param(f"Invalid {name}: {value!r} is not a valid date") from None


def _resource_type(rt: str) -> str:
    if rt not in RESOURCE_TYPES:
        raise not_found()
    return rt


def create_app(store: Store, notifier: Notifier, settings: ApiSettings) -> Flask:
    """Build the Flask app; ``settings`` URLs may be filled in after the sockets are bound."""
    app = Flask("sandbox.api")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def base() -> str:
        return settings.api_url

    def credentials_ok() -> bool:
        auth = request.authorization
        if auth is None or auth.type != "basic" or auth.username is None or auth.password is None:
            return False
        pairs = [(settings.account_sid, settings.auth_token)]
        if settings.api_key_sid and settings.api_key_secret:
            pairs.append((settings.api_key_sid, settings.api_key_secret))
        return any(
            hmac.compare_digest(auth.username.encode(), u.encode())
            and hmac.compare_digest(auth.password.encode(), p.encode())
            for u, p in pairs
        )

    # ---- cross-cutting: auth, faults, logging ---------------------------------------------------------
    @app.before_request
    def _guard() -> Response | None:
        request.environ["sandbox.started"] = time.monotonic()
        if not request.path.startswith("/v1"):
            return None
        if not credentials_ok():
            return twilio_error_response(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        fault, retry_after, slow_ms = store.take_api_fault(request.endpoint)
        request.environ["sandbox.fault"] = fault
        if slow_ms:
            time.sleep(slow_ms / 1000)
        if fault == "429":
            return twilio_error_response(429, 20429, "Too Many Requests", {"Retry-After": str(retry_after)})
        if fault == "500":
            return twilio_error_response(500, 20500, "Internal Server Error")
        if fault == "403":
            return twilio_error_response(403, 20403, "Forbidden")
        return None

    @app.after_request
    def _after(resp: Response) -> Response:
        if request.path.startswith("/v1"):
            resp.headers.update(_CORS)
            resp.headers["Twilio-Request-Id"] = "RQ" + uuid.uuid4().hex
            store.log(
                "requests",
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string.decode(),
                    "operation": request.endpoint,
                    "status": resp.status_code,
                    "fault": request.environ.get("sandbox.fault"),
                    "at": datetime.now(UTC).isoformat(),
                    "duration_ms": round((time.monotonic() - request.environ["sandbox.started"]) * 1000, 2),
                },
            )
        return resp

    @app.errorhandler(TwilioError)
    def _twilio_error(exc: TwilioError) -> Response:
        return twilio_error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if request.path.startswith("/_sandbox"):
            resp = jsonify({"error": exc.description, "status": status})
            resp.status_code = status
            return resp
        if status == 404:
            return twilio_error_response(404, 20404, f"The requested resource {request.path} was not found")
        if status == 405:
            return twilio_error_response(405, 20004, "Method not allowed")
        return twilio_error_response(status, 20001 if status == 400 else 20500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return twilio_error_response(500, 20500, "Internal Server Error")

    # ---- paging -----------------------------------------------------------------------------------------
    def paging(max_size: int) -> tuple[int, int, int]:
        """(page, page_size, offset) from Page, PageSize, PageToken; PageToken wins over Page."""
        args = request.args
        try:
            page_size = int(args.get("PageSize", DEFAULT_PAGE_SIZE))
        except ValueError:
            raise bad_param("Invalid PageSize: must be an integer") from None
        if not 1 <= page_size <= max_size:
            raise bad_param(f"Invalid PageSize {page_size}: must be between 1 and {max_size}")
        try:
            page = int(args.get("Page", 0))
        except ValueError:
            raise bad_param("Invalid Page: must be an integer") from None
        if page < 0:
            raise bad_param("Invalid Page: must be >= 0")
        offset = page * page_size
        token = args.get("PageToken")
        if token is not None:
            m = re.fullmatch(r"PT(\d+)", token)
            if not m:
                raise bad_param(f"Invalid PageToken: {token!r}")
            offset = int(m.group(1))
        return page, page_size, offset

    def meta(key: str, page: int, page_size: int, offset: int, total: int) -> dict[str, Any]:
        path = base() + request.path

        def url(p: int, token_offset: int | None) -> str:
            q: dict[str, Any] = {"PageSize": page_size, "Page": p}
            if token_offset is not None:
                q["PageToken"] = f"PT{token_offset}"
            return f"{path}?{urlencode(q)}"

        has_token = "PageToken" in request.args
        return {
            "page": page,
            "page_size": page_size,
            "first_page_url": url(0, None),
            "previous_page_url": url(page - 1, max(0, offset - page_size)) if page > 0 and offset > 0 else None,
            "url": url(page, offset if has_token else None),
            "next_page_url": url(page + 1, offset + page_size) if offset + page_size < total else None,
            "key": key,
        }

    # ---- views --------------------------------------------------------------------------------------------
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

    def config_view(rt: str, cfg: dict[str, Any]) -> dict[str, Any]:
        return {
            "enabled": cfg["enabled"],
            "webhook_url": cfg["webhook_url"],
            "webhook_method": cfg["webhook_method"],
            "resource_type": rt,
            "url": f"{base()}/v1/Exports/{rt}/Configuration",
        }

    # ---- Twilio operations ------------------------------------------------------------------------------
    @app.get("/v1/Exports/<rt>", endpoint="FetchExport")
    def fetch_export(rt: str) -> Response:
        rt = _resource_type(rt)
        return jsonify(
            {
                "resource_type": rt,
                "url": f"{base()}/v1/Exports/{rt}",
                "links": {
                    "days": f"{base()}/v1/Exports/{rt}/Days",
                    "export_custom_jobs": f"{base()}/v1/Exports/{rt}/Jobs",
                    "jobs": f"{base()}/v1/Exports/Jobs",
                },
            }
        )

    @app.get("/v1/Exports/<rt>/Configuration", endpoint="FetchExportConfiguration")
    def fetch_configuration(rt: str) -> Response:
        rt = _resource_type(rt)
        return jsonify(config_view(rt, store.get_config(rt)))

    @app.post("/v1/Exports/<rt>/Configuration", endpoint="UpdateExportConfiguration")
    def update_configuration(rt: str) -> Response:
        rt = _resource_type(rt)
        form = request.form
        changes: dict[str, Any] = {}
        if "Enabled" in form:
            value = form["Enabled"].strip().lower()
            if value not in ("true", "false"):
                raise bad_param(f"Invalid Enabled: {form['Enabled']!r} is not a boolean")
            changes["enabled"] = value == "true"
        if "WebhookUrl" in form:
            url = form["WebhookUrl"]
            if url and not _valid_url(url):
                raise bad_param(f"Invalid WebhookUrl: {url!r} is not an absolute http(s) URL")
            changes["webhook_url"] = url
        if "WebhookMethod" in form:
            method = form["WebhookMethod"].upper()
            if method and method not in ("GET", "POST"):
                raise bad_param(f"Invalid WebhookMethod: {form['WebhookMethod']!r}; use GET or POST")
            changes["webhook_method"] = method
        return jsonify(config_view(rt, store.update_config(rt, changes)))

    @app.post("/v1/Exports/<rt>/Jobs", endpoint="CreateExportCustomJob")
    def create_job(rt: str) -> Response:
        rt = _resource_type(rt)
        form = request.form
        for name in ("StartDay", "EndDay", "FriendlyName"):
            if not form.get(name, "").strip():
                raise bad_param(f"Missing required parameter {name} in the post body")
        start = _parse_day(form["StartDay"], "StartDay")
        end = _parse_day(form["EndDay"], "EndDay")
        latest = store.today() - timedelta(days=2)
        if end > latest:
            raise bad_param(
                f"Invalid EndDay {end.isoformat()}: it must be at least 2 days before the current UTC day "
                f"(latest allowed: {latest.isoformat()})"
            )
        if start > end:
            raise bad_param(f"Invalid StartDay {start.isoformat()}: it must not be after EndDay {end.isoformat()}")
        webhook_url = form.get("WebhookUrl") or None
        webhook_method = (form.get("WebhookMethod") or "").upper() or None
        if bool(webhook_url) != bool(webhook_method):
            raise bad_param("WebhookUrl and WebhookMethod must be supplied together")
        if webhook_url and not _valid_url(webhook_url):
            raise bad_param(f"Invalid WebhookUrl: {webhook_url!r} is not an absolute http(s) URL")
        if webhook_method and webhook_method not in ("GET", "POST"):
            raise bad_param(f"Invalid WebhookMethod: {form.get('WebhookMethod')!r}; use GET or POST")
        email = form.get("Email") or None
        if email and "@" not in email:
            raise bad_param(f"Invalid Email: {email!r}")
        try:
            job = store.create_job(rt, start, end, form["FriendlyName"], webhook_url, webhook_method, email)
        except QuotaExceeded as exc:
            raise bad_param(str(exc)) from None
        log.info("job %s created: %s %s..%s", job.sid, rt, start, end)
        with store.transaction() as now:
            body = job_fields(job, now, store.queue_positions(now).get(job.sid, 1))
        body["resource_type"] = None  # quirk seen in a real 2020 capture: a fresh job answers these as null
        body["details"] = None
        resp = jsonify(body)
        resp.status_code = 201
        return resp

    @app.get("/v1/Exports/<rt>/Jobs", endpoint="ListExportCustomJob")
    def list_jobs(rt: str) -> Response:
        rt = _resource_type(rt)
        page, page_size, offset = paging(JOBS_MAX_PAGE_SIZE)
        with store.transaction() as now:
            jobs = store.jobs_of(rt)
            queue = store.queue_positions(now)
            items = [job_fields(j, now, queue.get(j.sid, 0)) for j in jobs[offset : offset + page_size]]
        return jsonify({"jobs": items, "meta": meta("jobs", page, page_size, offset, len(jobs))})

    @app.get("/v1/Exports/Jobs/<sid>", endpoint="FetchJob")
    def fetch_job(sid: str) -> Response:
        if not _JOB_SID_RE.match(sid):
            raise not_found()
        with store.transaction() as now:
            job = store.job(sid)
            if job is None:
                raise not_found()
            fields = job_fields(job, now, store.queue_positions(now).get(sid, 0))
        # The job schema's property order (it also has `url`).
        fields["url"] = f"{base()}/v1/Exports/Jobs/{sid}"
        return jsonify({k: fields[k] for k in JOB_ORDER})

    @app.delete("/v1/Exports/Jobs/<sid>", endpoint="DeleteJob")
    def delete_job(sid: str) -> Response:
        if not _JOB_SID_RE.match(sid) or not store.delete_job(sid):
            raise not_found()
        log.info("job %s deleted", sid)
        return Response(status=204)

    @app.get("/v1/Exports/<rt>/Days", endpoint="ListDay")
    def list_days(rt: str) -> Response:
        rt = _resource_type(rt)
        page, page_size, offset = paging(DAYS_MAX_PAGE_SIZE)
        files = store.day_files(rt)
        items = [
            {
                "day": f.day.isoformat(),
                "size": f.size,
                "create_date": f.created_wall.date().isoformat(),
                "friendly_name": f.friendly_name,
                "resource_type": f.resource_type,
            }
            for f in files[offset : offset + page_size]
        ]
        return jsonify({"days": items, "meta": meta("days", page, page_size, offset, len(files))})

    @app.get("/v1/Exports/<rt>/Days/<day>", endpoint="FetchDay")
    def fetch_day(rt: str, day: str) -> Response:
        rt = _resource_type(rt)
        if not _DAY_RE.match(day):
            raise not_found()
        try:
            d = date.fromisoformat(day)
        except ValueError:
            raise not_found() from None
        link = store.new_link(rt, d)
        if link is None:
            raise not_found()
        stamp = link.created_wall.strftime("%Y%m%dT%H%M%SZ")
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Date": stamp,
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Expires": str(max(1, round(link.ttl))),
                "X-Amz-Credential": f"ASIASANDBOX/{stamp[:8]}/us-east-1/s3/aws4_request",
                "X-Amz-Signature": link.signature,
            }
        )
        target = f"{settings.files_url}/{quote(link.file.key(settings.account_sid), safe='/')}?{query}"
        resp = jsonify({"redirect_to": target})
        resp.status_code = 307
        resp.headers["Location"] = target
        return resp

    # ---- control API (no auth) ---------------------------------------------------------------------------
    def control_error(message: str, status: int = 400) -> Response:
        resp = jsonify({"error": message, "status": status})
        resp.status_code = status
        return resp

    def json_body() -> dict[str, Any]:
        body = request.get_json(force=True, silent=True)
        if body is None and request.get_data():
            raise ScenarioError("body is not valid JSON")
        if body is not None and not isinstance(body, dict):
            raise ScenarioError("body must be a JSON object")
        return body or {}

    @app.errorhandler(ScenarioError)
    def _scenario_error(exc: ScenarioError) -> Response:
        return control_error(str(exc))

    @app.get("/_sandbox/health")
    def health() -> Response:
        return jsonify(
            {
                "status": "ok",
                "api_url": settings.api_url,
                "files_url": settings.files_url,
                "account_sid": settings.account_sid,
            }
        )

    @app.post("/_sandbox/reset")
    def reset() -> Response:
        store.reset()
        log.info("state reset")
        return jsonify({"status": "reset"})

    @app.route("/_sandbox/scenario", methods=["GET", "PUT", "PATCH"])
    def scenario() -> Response:
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

    @app.route("/_sandbox/faults", methods=["GET", "PUT"])
    def faults() -> Response:
        if request.method == "PUT":
            store.set_faults(Faults.from_json(json_body()))
        return jsonify(store.get_faults())

    @app.post("/_sandbox/clock")
    def clock() -> Response:
        seconds = json_body().get("advance", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ScenarioError("advance must be a number of seconds >= 0")
        return jsonify({"offset_seconds": store.advance_clock(float(seconds))})

    @app.get("/_sandbox/jobs")
    def control_jobs() -> Response:
        return jsonify({"jobs": store.control_jobs()})

    @app.get("/_sandbox/jobs/<sid>")
    def control_job(sid: str) -> Response:
        job = store.control_job(sid)
        return jsonify(job) if job else control_error(f"no job {sid}", 404)

    @app.post("/_sandbox/jobs/<sid>/complete")
    def control_complete(sid: str) -> Response:
        if not store.complete(sid):
            return control_error(f"no job {sid}", 404)
        return jsonify(store.control_job(sid))

    @app.post("/_sandbox/jobs/<sid>/webhook")
    def control_redeliver(sid: str) -> Response:
        call = store.redeliver(sid)
        if call is None:
            return control_error(f"no job {sid} with a webhook", 404)
        notifier.submit(call)
        return jsonify({"queued": True, "job_sid": sid, "url": call.url, "method": call.method})

    @app.get("/_sandbox/webhooks")
    def control_webhooks() -> Response:
        return jsonify({"deliveries": store.read_log("deliveries")})

    @app.get("/_sandbox/downloads")
    def control_downloads() -> Response:
        return jsonify({"downloads": store.read_log("downloads")})

    @app.get("/_sandbox/requests")
    def control_requests() -> Response:
        return jsonify({"requests": store.read_log("requests")})

    @app.get("/_sandbox/days/<rt>/<day>")
    def control_day(rt: str, day: str) -> Response:
        if rt not in RESOURCE_TYPES or not _DAY_RE.match(day):
            return control_error("use /_sandbox/days/<ResourceType>/<yyyy-mm-dd>", 404)
        d = date.fromisoformat(day)
        exp = store.expected_day(rt, d)
        info = (
            describe_day_file(rt, d, exp["target"], exp["seed"], account_sid=settings.account_sid)
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

    return app


def _valid_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
