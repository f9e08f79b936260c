"""Health and metrics endpoints: cheap (results cached ~2 s), unauthenticated, nothing secret or named in them.

Anonymous answers carry counts and states only: no account label (a customer's friendly name), SID or error text
from Twilio (issue 20); ``/health`` with the admin token names each feed and account. Feed figures are the
poller's last summary (app/feeds/summary.py), never computed on the request, so their cost does not grow with
feeds x days.

- ``/livez``: the process answers; no dependency checks, so a Redis outage never restarts every pod.
- ``/readyz``: what the web needs to do its job (Redis; the configuration was valid at start) -> 200, else 503
  naming the failing check (the load balancer's target health check). Not S3: the web never writes to it, so an
  S3 outage must not take webhook intake and the API out of the load balancer (workers retry the copies).
- ``/health``: ``application/health+json`` (draft-inadarei-api-health-check): pass / warn / fail with details,
  S3 bucket reachability included (short timeouts, one attempt), and ``s3:store``: the S3 store probe's verdict
  (``app.bucket.probe``, read from its Redis cache: the web never writes to S3). With ``Authorization: Bearer
  $ADMIN_TOKEN``, one entry per feed and per account (label, SID, Twilio's error) and the store probe's findings
  and write path (``detail``); a wrong token is the API's 401 (counted).
- ``/readyz`` also fails (``store``) when the cached probe says the store would corrupt what the relay writes
  under its S3_OBJECT_TAGS: a configuration error, like an invalid setting, not an S3 outage.
- ``/metrics``: Prometheus text format, aggregated across gunicorn workers and RQ workers; feeds per resource
  type and accounts per state, no account label.
- ``/openapi.json``: the API description kept in the repo (app/web/openapi.json).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from rq import Worker

from app.bucket import probe as store_probe
from app.feeds import summary as feed_summary
from app.jobs import recovery
from app.jobs.retention import RETENTION_FAIL_S, RETENTION_WARN_S, TWILIO_RETENTION_S, scan_active_days
from app.platform import clock
from app.platform.metrics import ClusterCollector, render
from app.platform.s3_client import probe_bucket
from app.platform.validation import query_args
from app.services import Services
from app.services import current_services as _svc
from app.twilio.accounts import OK, REFUSED, SUSPENDED, accounts_view
from app.web.api import require_admin_token

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)
_OPENAPI = Path(__file__).with_name("openapi.json")
UNPUBLISHED = "unpublished"  # /openapi.json's info.version for anonymous callers

CACHE_SECONDS = 2.0


class CachedCheck:
    """Memoise a check for CACHE_SECONDS so probes and scrapers cannot hammer Redis or S3: every endpoint here
    answers through one.

    One thread refreshes at a time; the others get the previous result at once rather than queue behind a
    slow dependency (a hung check must not tie up every request thread of the web). Results live in
    ``svc.cache`` under the check's function name."""

    def __init__(self, func: Callable[[Services], Any]) -> None:
        self.func = func
        self.lock = threading.Lock()

    def __call__(self, svc: Services) -> Any:
        at, value = svc.cache.get(self.func.__name__, (0.0, None))
        if time.monotonic() - at <= CACHE_SECONDS:
            return value
        if not self.lock.acquire(blocking=value is None):  # wait only when there is nothing to answer yet
            return value
        try:
            at, value = svc.cache.get(self.func.__name__, (0.0, None))
            if time.monotonic() - at > CACHE_SECONDS:  # another thread may have refreshed it meanwhile
                value = self.func(svc)
                svc.cache[self.func.__name__] = (time.monotonic(), value)
            return value
        finally:
            self.lock.release()


def _check(name: str, func: Callable[[], Any]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        func()
        return {
            "status": "pass",
            "observedValue": round((time.monotonic() - started) * 1000, 1),
            "observedUnit": "ms",
        }
    except Exception as exc:
        # These endpoints are unauthenticated: the error's text (endpoints, the bucket) goes to the log only.
        log.warning("health check %s failed: %s: %s", name, type(exc).__name__, exc)
        return {"status": "fail", "output": f"{name} unavailable ({type(exc).__name__}); details in the logs"}


def _readiness(svc: Services) -> dict[str, dict[str, Any]]:
    redis_check = _check("redis", svc.jobs.ping)
    up = redis_check["status"] == "pass"
    return {
        "redis": redis_check,
        "registry": _registry_check(svc) if up else {"status": "pass"},
        "config": {"status": "pass"},  # the app would not have started with an invalid configuration
        "store": _store_ready(_store_check(svc)) if up else {"status": "pass"},
    }


def _store_ready(check: dict[str, Any]) -> dict[str, Any]:
    """Readiness fails only for a store the probe refused (a warning is /health's business)."""
    if check["status"] != "fail":
        return {"status": "pass"}
    return {"status": "fail", "output": "the S3 store would corrupt what the relay writes: run `relay doctor`"}


def _store_check(svc: Services) -> dict[str, Any]:
    """The store probe's verdict from its Redis cache (workers probe; the web only reads): fail when the store
    would corrupt what the relay writes, warn before any probe or with a warning, else pass. ``detail``: the
    findings and the write path, for authenticated callers only (see ``health``)."""
    s = svc.settings
    try:
        findings = svc.probes.cached_findings(svc.s3_probe_client(), s.s3_bucket)
    except Exception as exc:
        log.warning("store probe cache unreadable: %s", exc)
        return {"status": "pass", "output": "unknown"}
    if findings is None:
        return {"status": "warn", "output": "not probed yet (a worker probes when it starts)", "detail": {}}
    path = store_probe.decide(findings, s.s3_object_tags, s.s3_bucket)
    status = "fail" if path.refusal else "warn" if path.warnings else "pass"
    detail = {
        "probed_at": findings.probed_at,
        "findings": dict(findings.lines()),
        "S3_OBJECT_TAGS": s.s3_object_tags,
        "digest_in": "tags" if path.digest_in_tags else "job manifests",
        "notes": [path.refusal] if path.refusal else list(path.warnings),
    }
    return {"status": status, "detail": detail}


def _registry_check(svc: Services) -> dict[str, Any]:
    """Fail while Redis has lost the registry (its marker gone, the bucket's copy there): the poller rebuilds it
    (app/jobs/recovery.py). An S3 that cannot answer is not the web's problem: then the check passes."""
    try:
        state = recovery.registry_state(svc, svc.s3_probe_client())
    except Exception as exc:
        log.warning("registry marker check skipped: %s", exc)
        return {"status": "pass", "output": "unknown (S3 unavailable)"}
    if state == recovery.LOST:
        return {"status": "fail", "output": "registry lost (Redis data gone): being rebuilt by the poller"}
    return {"status": "pass", "output": "fresh install" if state == recovery.FRESH else "ok"}


def _s3_bucket(svc: Services) -> dict[str, Any]:
    return _check("s3", lambda: probe_bucket(svc.s3_probe_client(), svc.settings.s3_bucket))


_ready = CachedCheck(_readiness)
_s3 = CachedCheck(_s3_bucket)


@bp.get("/livez")
@query_args(strict=False)
def livez() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
@query_args(strict=False)
def readyz() -> tuple[Response, int]:
    checks = _ready(_svc())
    failing = sorted(name for name, c in checks.items() if c["status"] != "pass")
    if failing:
        return jsonify(status="unavailable", failing=failing, checks=checks), 503
    return jsonify(status="ok", checks=checks), 200


def _health(svc: Services) -> dict[str, Any]:
    checks: dict[str, list[dict[str, Any]]] = {}
    ready = _ready(svc)  # shares /readyz's 2-second cache: probes and dashboards polling both cost one check
    checks["redis:responseTime"] = [ready["redis"]]
    checks["s3:bucket"] = [_s3(svc)]
    checks["s3:store"] = [_store_check(svc)]
    if ready["redis"]["status"] == "pass":
        workers = Worker.all(connection=svc.rq_connection)
        checks["workers:count"] = [{"status": "pass" if workers else "fail", "observedValue": len(workers)}]
        depths = svc.enqueuer.depths()
        checks["queues:depth"] = [{"componentId": n, "status": "pass", "observedValue": d} for n, d in depths.items()]
        days = scan_active_days(svc.jobs, svc.days)
        failed, oldest = days.failed, days.oldest_uncopied_age
        checks["days:failed"] = [{"status": "warn" if failed else "pass", "observedValue": failed}]
        age_status = "fail" if oldest > RETENTION_FAIL_S else "warn" if oldest > RETENTION_WARN_S else "pass"
        checks["days:oldestUncopiedAge"] = [
            {
                "status": age_status,
                "observedValue": round(oldest),
                "observedUnit": "s",
                "output": f"Twilio deletes day files {TWILIO_RETENTION_S // 86400} days after creation",
            }
        ]
        last = svc.marks.last_poll()
        stale = last is None or clock.now() - last > 3 * svc.settings.poll_interval_seconds + 60
        checks["poller:lastRun"] = [
            {
                "status": "warn" if stale else "pass",
                "observedValue": None if last is None else round(clock.now() - last),
                "observedUnit": "s",
            }
        ]
        checks["feeds:lagDays"] = _feed_type_checks(feed_summary.by_resource_type(feed_summary.current(svc)))
        checks["webhooks:signaturePolicy"] = [_signature_policy(svc)]
        checks["accounts:state"] = _account_state_checks(svc)
    statuses = {c["status"] for entries in checks.values() for c in entries}
    overall = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
    return {"status": overall, "serviceId": "bulkexport-relay", "checks": checks}


def _account_state_checks(svc: Services) -> list[dict[str, Any]]:
    """Anonymous: how many accounts are in each state; warn while any is not usable (the others keep syncing)."""
    doc = accounts_view(svc)
    counts = Counter(a["state"] for a in doc["accounts"])
    checks = [
        {"componentId": state, "status": "pass" if state == OK else "warn", "observedValue": n}
        for state, n in sorted(counts.items())
    ]
    return checks + _discovery_check(doc)


def _account_checks(svc: Services) -> list[dict[str, Any]]:
    """With the admin token: one entry per account, named, with Twilio's error when its credentials failed."""
    doc = accounts_view(svc)
    checks = [
        {
            "componentId": a["label"] or a["sid"],
            "account": a["sid"],
            "status": "pass" if a["state"] == OK else "warn",
            "observedValue": a["state"],
            **({"output": a["error"]} if a["error"] else {}),
        }
        for a in doc["accounts"]
    ]
    return checks + _discovery_check(doc)


def _discovery_check(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A failed subaccount discovery, in words only (its error text names accounts: the logs have it)."""
    if not doc["discovery_error"]:
        return []
    return [{"componentId": "discovery", "status": "warn", "output": "subaccount discovery failed"}]


def _signature_policy(svc: Services) -> dict[str, Any]:
    """WEBHOOK_SIGNATURE and, under ``auto``, whether unsigned deliveries are refused yet (app.web.intake)."""
    policy = svc.settings.webhook_signature
    seen = svc.tokens.signed_seen()
    refusing = policy == "required" or (policy == "auto" and seen is not None)
    detail = "unsigned deliveries refused" if refusing else "unsigned deliveries accepted"
    if policy == "auto":
        detail += " (a signed delivery has been seen)" if seen else " until a signed delivery is seen"
    return {"status": "pass", "observedValue": policy, "output": detail}


def _feed_notes(counts: dict[str, int], waiting: int) -> list[str]:
    failed, corrupt = counts.get("failed", 0), counts.get("corrupt", 0)
    notes = [f"{failed} failed day(s): requeue them"] if failed else []
    notes += [f"{corrupt} corrupt day(s): the bucket's object changed after the copy"] if corrupt else []
    return notes + ([f"{waiting} day(s) wait for quota"] if waiting else [])


def _feed_status(lag: int, counts: dict[str, int]) -> str:
    """warn when the feed lags more than FEED_LAG_DAYS behind the newest day that can exist, or has failed or
    corrupt days"""
    troubled = lag > feed_summary.FEED_LAG_DAYS or counts.get("failed", 0) or counts.get("corrupt", 0)
    return "warn" if troubled else "pass"


def _feed_type_checks(types: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Anonymous: per resource type, the largest lag of its feeds and their days counted over accounts."""
    checks = []
    for t in types:
        notes = [f"{t['feeds']} feed(s)", *_feed_notes(t["counts"], t["waiting_for_quota"])]
        checks.append(
            {
                "componentId": t["resource_type"],
                "status": _feed_status(t["lag"], t["counts"]),
                "observedValue": t["lag"],
                "observedUnit": "days",
                "output": "; ".join(notes),
            }
        )
    return checks


def _feed_checks(svc: Services, names: dict[str, str]) -> list[dict[str, Any]]:
    """With the admin token: the same per feed, with its account's SID and label."""
    checks = []
    for feed in feed_summary.current(svc):
        notes = _feed_notes(feed["counts"], feed["waiting_for_quota"])
        checks.append(
            {
                "componentId": feed["resource_type"],
                "account": feed["account"],
                "label": names.get(feed["account"]) or None,
                "status": _feed_status(feed["lag"], feed["counts"]),
                "observedValue": feed["lag"],
                "observedUnit": "days",
                **({"output": "; ".join(notes)} if notes else {}),
            }
        )
    return checks


_health_cached = CachedCheck(_health)


def _health_detail(svc: Services) -> dict[str, Any]:
    """The anonymous document with feeds and accounts one entry each, named (for the admin token and the console).
    Same statuses entry for entry, so the overall status is the anonymous one."""
    doc = _health_cached(svc)
    if "accounts:state" not in doc["checks"]:
        return doc  # Redis down: nothing to name
    names = {a.sid: a.label for a in svc.accounts.all()}
    detail = {"feeds:lagDays": _feed_checks(svc, names), "accounts:state": _account_checks(svc)}
    return doc | {"checks": doc["checks"] | detail}


_health_detail_cached = CachedCheck(_health_detail)


def health_document(svc: Services, detail: bool = False) -> dict[str, Any]:
    """/health's document (cached ~2 s), anonymous or named."""
    return _health_detail_cached(svc) if detail else _health_cached(svc)


def _detail_asked() -> bool:
    """A request that sends a token asks for the named document, and then the token must be right: a wrong one is
    the API's 401 and counts towards the same failed-authentication limit (app/platform/guess_limit.py)."""
    if "Authorization" not in request.headers:
        return False
    require_admin_token()
    return True


def _without_detail(doc: dict[str, Any]) -> dict[str, Any]:
    """The anonymous document: no check's ``detail`` (the store probe's findings and write path)."""
    checks = {
        name: [{k: v for k, v in c.items() if k != "detail"} for c in entries]
        for name, entries in doc["checks"].items()
    }
    return {**doc, "checks": checks}


@bp.get("/health")
@query_args(strict=False)
def health() -> Response:
    detail = _detail_asked()
    doc = health_document(_svc(), detail)
    doc = doc if detail else _without_detail(doc)
    response = Response(
        current_app.json.dumps(doc),
        status=503 if doc["status"] == "fail" else 200,
        content_type="application/health+json",
    )
    response.vary.add("Authorization")
    if detail:
        response.cache_control.no_store = True
        response.cache_control.private = True
    return response


@bp.get("/openapi.json")
@query_args(strict=False)
def openapi() -> Response:
    """The API description kept in the repo (also what the fuzz and contract tests read). Its ``info.version`` is
    the relay's version (app/platform/version.py) for the admin token only; anonymous callers get ``unpublished``
    there, so
    the document does not say which advisories apply (a wrong token is the API's 401, as on /health)."""
    doc = json.loads(_OPENAPI.read_bytes())
    if not _detail_asked():
        doc["info"]["version"] = UNPUBLISHED
    response = Response(json.dumps(doc, indent=2), content_type="application/json")
    response.vary.add("Authorization")
    return response


def _gauges(svc: Services) -> dict[str, Any]:
    days = scan_active_days(svc.jobs, svc.days)
    states = Counter(a["state"] for a in accounts_view(svc)["accounts"])
    return {
        "queues": svc.enqueuer.depths(),
        "workers": Worker.count(connection=svc.rq_connection),
        "oldest_uncopied": days.oldest_uncopied_age,
        "failed": days.failed,
        "feeds": feed_summary.by_resource_type(feed_summary.current(svc)),
        "accounts": {state: states.get(state, 0) for state in (OK, REFUSED, SUSPENDED)} | states,
        "poller_age": clock.now() - (svc.marks.last_poll() or float("-inf")),  # +Inf: never polled
        "lost": int(_ready(svc)["registry"]["status"] == "fail"),  # recovery.registry_state, /readyz's cache
    }


_gauges_cached = CachedCheck(_gauges)


@bp.get("/metrics")
@query_args(strict=False)
def metrics() -> Response:
    svc = _svc()
    body, content_type = render(ClusterCollector(lambda: _gauges_cached(svc)))
    return Response(body, content_type=content_type)
