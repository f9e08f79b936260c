"""Day files: ListDay (``GET /v1/Exports/{RT}/Days``) and FetchDay's 307 to a presigned, single-use link."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, jsonify

from sandbox.routes.common import DAY_RE, account_sid, ctx, list_meta, not_found, paging, resource_type

bp = Blueprint("days", __name__)

DAYS_MAX_PAGE_SIZE = 400


@bp.get("/v1/Exports/<rt>/Days", endpoint="ListDay")
def list_days(rt: str) -> Response:
    rt = resource_type(rt)
    page, page_size, offset = paging(DAYS_MAX_PAGE_SIZE)
    files = ctx().store.day_files(account_sid(), rt)
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
    return jsonify({"days": items, "meta": list_meta("days", page, page_size, offset, len(files))})


@bp.get("/v1/Exports/<rt>/Days/<day>", endpoint="FetchDay")
def fetch_day(rt: str, day: str) -> Response:
    rt = resource_type(rt)
    if not DAY_RE.match(day):
        raise not_found()
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise not_found() from None
    context = ctx()
    link = context.store.new_link(account_sid(), rt, d)
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
    key = quote(link.file.key(), safe="/")
    target = f"{context.settings.files_url}/{key}?{query}"
    resp = jsonify({"redirect_to": target})
    resp.status_code = 307
    resp.headers["Location"] = target
    return resp
