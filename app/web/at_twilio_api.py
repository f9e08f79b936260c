"""The HTTP API of Twilio's own lists, under /api/twilio (same admin token as the jobs API): the jobs Twilio has
for a resource type and the day files it holds, read live (``app.feeds.at_twilio``). ``?account=`` (SID or label)
picks the account; it may be left out when the relay serves one account. Unknown query parameters are a 400."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from app.feeds import at_twilio
from app.platform.validation import bounded_int, query_args
from app.services import current_services as _svc
from app.web.api import require_admin_token

bp = Blueprint("twilio_lists_api", __name__, url_prefix="/api/twilio")
bp.before_request(require_admin_token)

PAGING = ("page", "page_size")


def _page() -> tuple[int, int]:
    page = bounded_int(request.args, "page", 0, at_twilio.MAX_PAGE)
    return page, bounded_int(request.args, "page_size", 50, at_twilio.MAX_PAGE_SIZE, low=1)


@bp.get("/jobs")
@query_args("resource_type", "account", *PAGING)
def twilio_jobs() -> Response:
    svc = _svc()
    account = svc.accounts.resolve(request.args.get("account"))
    return jsonify(at_twilio.twilio_jobs(svc, request.args.get("resource_type"), account, *_page()))


@bp.get("/days/<resource_type>")
@query_args("account", *PAGING)
def twilio_days(resource_type: str) -> Response:
    svc = _svc()
    account = svc.accounts.resolve(request.args.get("account"))
    return jsonify(at_twilio.twilio_days(svc, resource_type, account, *_page()))
