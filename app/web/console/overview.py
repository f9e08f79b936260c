"""The overview: is everything in the bucket, what is stuck or failed, how close is Twilio's 7-day deletion.

Built from what ``/health`` checks (the same cached functions: Redis, S3, workers, poller, queues, failed days,
oldest uncopied day), today's quota (``coverage.quota_view``) and the coverage report of every feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from app.feeds import coverage
from app.jobs.retention import RETENTION_FAIL_S, RETENTION_WARN_S, TWILIO_RETENTION_S, UncopiedDay, scan_active_days
from app.platform import clock
from app.services import Services, current_services
from app.twilio.accounts import accounts_view
from app.web import health
from app.web.console.account import selected_account
from app.web.console.blueprint import bp
from app.web.console.web import render

STATUS_WORDS = {"pass": "OK", "warn": "Warning", "fail": "Failing"}


@dataclass(frozen=True)
class Check:
    """One line of the health panel: what, its status word, and what was seen."""

    name: str
    status: str  # pass | warn | fail
    detail: str

    @property
    def word(self) -> str:
        return STATUS_WORDS.get(self.status, self.status)


def _first(doc: dict[str, Any], name: str) -> dict[str, Any] | None:
    entries = doc.get("checks", {}).get(name) or []
    return entries[0] if entries else None


def health_checks(doc: dict[str, Any], poll_interval: int) -> list[Check]:
    """Redis, S3, workers and poller from /health's document, each with a sentence instead of JSON."""
    out = []
    redis_c = _first(doc, "redis:responseTime")
    if redis_c is not None:
        ok = redis_c["status"] == "pass"
        out.append(Check("Redis", redis_c["status"], f"answers in {redis_c['observedValue']} ms" if ok else "down"))
    s3 = _first(doc, "s3:bucket")
    if s3 is not None:
        ok = s3["status"] == "pass"
        out.append(Check("S3 bucket", s3["status"], "reachable" if ok else s3.get("output", "unreachable")))
    workers = _first(doc, "workers:count")
    if workers is None:
        out.append(Check("Workers", "fail", "unknown: Redis is down"))
    else:
        count = workers["observedValue"]
        out.append(Check("Workers", workers["status"], f"{count} registered" if count else "none running"))
    poller = _first(doc, "poller:lastRun")
    if poller is not None:
        age = poller["observedValue"]
        seen = "never ran" if age is None else f"last run {age} s ago (every {poll_interval} s)"
        out.append(Check("Poller", poller["status"], seen))
    return out


CHECK_NAMES = {
    "redis:responseTime": "Redis",
    "s3:bucket": "S3 bucket",
    "workers:count": "Workers",
    "queues:depth": "Queue",
    "days:failed": "Failed days in open jobs",
    "days:oldestUncopiedAge": "Oldest uncopied day file",
    "poller:lastRun": "Poller",
    "feeds:lagDays": "Feed",
    "webhooks:signaturePolicy": "Webhook signatures",
    "accounts:state": "Account",
}


def attention(doc: dict[str, Any]) -> list[dict[str, str]]:
    """Every /health check that is not ``pass``, in words: why the overall status is what it is."""
    out = []
    for name, entries in doc.get("checks", {}).items():
        for c in entries:
            if c.get("status") == "pass":
                continue
            what = " ".join(filter(None, (CHECK_NAMES.get(name, name), c.get("componentId"))))
            seen = c.get("output") or f"{c.get('observedValue')} {c.get('observedUnit', '')}".strip()
            out.append({"status": c["status"], "text": f"{what}: {seen}"})
    return out


def retention_view(oldest: UncopiedDay | None) -> dict[str, Any]:
    """The oldest day file Twilio made that is not copied yet, against its deletion 7 days after creation."""
    if oldest is None:
        return {"status": "pass", "day": None, "age": 0.0, "left": float(TWILIO_RETENTION_S)}
    age = oldest.age_seconds
    status = "fail" if age > RETENTION_FAIL_S else "warn" if age > RETENTION_WARN_S else "pass"
    return {
        "status": status,
        "day": oldest.day,
        "job_sid": oldest.job_sid,
        "age": age,
        "left": max(0.0, TWILIO_RETENTION_S - age),
        "limit": TWILIO_RETENTION_S,
    }


def overview_model(svc: Services) -> dict[str, Any]:
    doc = health.health_document(svc, detail=True)  # /health's own cached document (named): one check serves both
    base = {
        "overall": doc["status"],
        "checks": health_checks(doc, svc.settings.poll_interval_seconds),
        "attention": attention(doc),
        "queues": {q["componentId"]: q["observedValue"] for q in _first_all(doc, "queues:depth")},
    }
    try:
        return base | _registry_model(svc)
    except redis.RedisError:  # the health panel still says what is wrong
        return base | {"redis_down": True, "feeds": [], "account_rows": []}


def _registry_model(svc: Services) -> dict[str, Any]:
    active = scan_active_days(svc.jobs, svc.days)
    oldest = max(active.uncopied, key=lambda d: d.age_seconds, default=None)
    account = selected_account()
    every = coverage.report(svc)["feeds"]  # every account's: the answers are for the whole relay
    return {
        "redis_down": False,
        "quota": coverage.quota_view(svc, clock.utc_today(), account.family),
        "quota_resets_in": clock.seconds_to_next_utc_day(),
        "feeds": [f for f in every if f["account"] == account.sid],
        "all_feeds": len(every),
        "account_rows": account_rows(svc, every),
        "incomplete_days": sum(f["counts"]["missing"] + f["counts"]["failed"] + f["counts"]["corrupt"] for f in every),
        "in_flight_days": sum(f["counts"]["in_flight"] for f in every),
        "failed_in_jobs": active.failed,
        "failed_in_feeds": sum(f["counts"]["failed"] for f in every),
        "retention": retention_view(oldest),
        "uncopied": len(active.uncopied),
    }


def account_rows(svc: Services, feeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every account at a glance: its state (in words), how many feeds, their days by state (no credential)."""
    rows = []
    for account in accounts_view(svc)["accounts"]:
        mine = [f for f in feeds if f["account"] == account["sid"]]
        counts = {s: sum(f["counts"][s] for f in mine) for s in coverage.REPORTED_STATES}
        rows.append(
            account
            | {
                "feeds": len(mine),
                "counts": counts,
                "incomplete": counts["missing"] + counts["failed"] + counts["corrupt"],
            }
        )
    return rows


def _first_all(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return list(doc.get("checks", {}).get(name) or [])


@bp.get("/")
def overview() -> tuple[str, int]:
    model = overview_model(current_services())
    busy = any(model["queues"].values()) or bool(model.get("in_flight_days"))
    return render("overview.html", refresh=busy, page="overview", **model)
