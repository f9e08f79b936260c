"""The HTTP API for continuous sync, under /api: feeds, coverage, daily exports, copying one listed day, accounts
(same admin token as the jobs API). ``?account=`` (SID or label) picks the account; it may be left out when the
relay serves one account."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.feeds import coverage, daily_exports, declared, tombstones
from app.feeds.lifecycle_rule import lifecycle_rule_doc
from app.jobs.documents import job_view
from app.platform.errors import RequestError
from app.platform.validation import parse_day, query_args, validate_resource_type
from app.services import current_services as _svc
from app.twilio import accounts
from app.twilio.accounts import Account
from app.web.api import json_body, require_admin_token

bp = Blueprint("feeds_api", __name__, url_prefix="/api")
bp.before_request(require_admin_token)


def _account() -> Account:
    return _svc().accounts.resolve(request.args.get("account"))


def _account_filter() -> str | None:
    """For listings: an account if one is asked for, else every account."""
    return _account().sid if request.args.get("account") else None


@bp.get("/accounts")
@query_args()
def list_accounts() -> Response:
    return jsonify(accounts.accounts_view(_svc()))


@bp.get("/feeds")
@query_args("account")
def list_feeds() -> Response:
    only = _account_filter()
    return jsonify(feeds=[declared.feed_view(f) for f in _svc().feeds.list_feeds() if only in (None, f.account)])


@bp.get("/feeds/<resource_type>")
@query_args("account")
def show_feed(resource_type: str) -> Response:
    return jsonify(declared.feed_view(declared.require_feed(_svc().feeds, resource_type, _account().sid)))


@bp.put("/feeds/<resource_type>")
@query_args("account")
def put_feed(resource_type: str) -> Response:
    feed = declared.put_feed(_svc().feeds, declared.feed_from_body(resource_type, json_body(), _account().sid))
    return jsonify(declared.feed_view(feed))


@bp.delete("/feeds/<resource_type>")
@query_args("account")
def delete_feed(resource_type: str) -> Response:
    return jsonify(declared.feed_view(declared.delete_feed(_svc().feeds, resource_type, _account().sid)))


@bp.get("/coverage")
@query_args("resource_type", "from", "to", "account")
def show_coverage() -> Response:
    rt = request.args.get("resource_type")
    first, last = request.args.get("from"), request.args.get("to")
    return jsonify(
        coverage.report(
            _svc(),
            validate_resource_type(rt) if rt is not None else None,
            parse_day(first, "from") if first is not None else None,
            parse_day(last, "to") if last is not None else None,
            _account_filter(),
        )
    )


@bp.get("/daily/<resource_type>")
@query_args("account")
def show_daily(resource_type: str) -> Response:
    return jsonify(daily_exports.show(_svc(), resource_type, _account()))


@bp.put("/daily/<resource_type>")
@query_args("account")
def set_daily(resource_type: str) -> Response:
    body = json_body()
    if not isinstance(body, dict) or set(body) != {"enabled"} or not isinstance(body["enabled"], bool):
        raise RequestError('body must be {"enabled": true|false}')
    return jsonify(daily_exports.set_enabled(_svc(), resource_type, body["enabled"], _account()))


@bp.post("/days/<resource_type>/<day>/copy")
@query_args("account")
def copy_day(resource_type: str, day: str) -> tuple[Response, int]:
    """Copy one day file Twilio lists (no custom job, no quota), whether or not a feed covers it; lifts the day's
    tombstone."""
    svc = _svc()
    job = tombstones.copy_day(svc, resource_type, day, _account())
    return jsonify(job_view(svc.days, job)), 202


@bp.delete("/days/<resource_type>/<day>")
@query_args("account")
def delete_day(resource_type: str, day: str) -> tuple[Response, int]:
    """Delete the day's objects (on a worker) and keep it deleted: body ``{"reason": "..."}`` optional; ``by``
    ("cli", "console") names the asker, "api" when left out."""
    body = json_body(optional=True) or {}
    if not isinstance(body, dict) or set(body) - {"reason", "by"}:
        raise RequestError('body must be {"reason": "...", "by": "api|cli|console"} (both optional)')
    who = body.get("by", "api")
    if who not in tombstones.ASKERS:
        raise RequestError(f"by must be one of {', '.join(tombstones.ASKERS)}")
    doc = tombstones.delete_day(_svc(), resource_type, day, _account(), who, body.get("reason"))
    return jsonify(doc), 202


@bp.post("/days/<resource_type>/<day>/restore")
@query_args("account")
def restore_day(resource_type: str, day: str) -> Response:
    """Lift the day's tombstone: missing again, so the planner fetches it inside the feed's window."""
    return jsonify(tombstones.restore_day(_svc(), resource_type, day, _account()))


@bp.get("/lifecycle-rule")
@query_args()
def lifecycle_rule() -> Response:
    """The S3 lifecycle configuration equivalent to the feeds' retain_days (app/feeds/lifecycle_rule.py)."""
    svc = _svc()
    return jsonify(lifecycle_rule_doc(svc.settings, svc.feeds.list_feeds()))
