"""Twilio's Accounts API (2010-04-01), the part a parent account uses to discover its subaccounts.

``GET /2010-04-01/Accounts.json`` (ListAccount; ``FriendlyName``, ``Status``, ``PageSize`` 1..1000,
``Page``, ``PageToken``) lists the caller and, when the caller is a main account, its subaccounts, in
creation order. ``GET /2010-04-01/Accounts/{Sid}.json`` (FetchAccount) answers the caller itself, or
one of its subaccounts when the caller is their parent. Both answer Twilio's account resource
(``auth_token, date_created, date_updated, friendly_name, owner_account_sid, sid, status,
subresource_uris, type, uri``; dates in RFC 2822) and the 2010 API's page shape (``accounts, end,
first_page_uri, next_page_uri, page, page_size, previous_page_uri, start, uri``).

Refusals (Twilio's JSON error shape): bad, revoked or closed credentials 401 / 20003 (before anything
else, see hooks); a suspended caller 403 / 20005; an API key 403 / 20403 (Twilio's Standard keys cannot
use /Accounts); an existing account that is not the caller nor its subaccount (its parent, a sibling,
another family) 403 / 20403; an unknown or malformed SID 404 / 20404. Only the JSON format (``.json``)
exists here.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, g, jsonify, request

from sandbox.accounts import ACCOUNT_SID_RE, STATUSES, Account
from sandbox.routes.common import TwilioError, account_sid, bad_param, ctx, not_found, paging

bp = Blueprint("accounts", __name__)

ACCOUNTS_MAX_PAGE_SIZE = 1000
SUBRESOURCES = ("calls", "conferences", "messages", "recordings", "keys", "usage", "balance")
LIST_PATH = "/2010-04-01/Accounts.json"


def _rfc2822(dt: datetime) -> str:
    return format_datetime(dt.replace(microsecond=0, tzinfo=None), usegmt=False).replace("-0000", "+0000")


def account_resource(acct: Account) -> dict[str, Any]:
    """The api.v2010.account schema, secrets included (Twilio shows the auth token to its owners)."""
    uri = f"/2010-04-01/Accounts/{acct.sid}"
    return {
        "auth_token": acct.auth_token,
        "date_created": _rfc2822(acct.created),
        "date_updated": _rfc2822(acct.updated),
        "friendly_name": acct.friendly_name,
        "owner_account_sid": acct.owner_account_sid,
        "sid": acct.sid,
        "status": acct.status,
        "subresource_uris": {name: f"{uri}/{name.title().replace('_', '')}.json" for name in SUBRESOURCES},
        "type": "Full",
        "uri": f"{uri}.json",
    }


def _refuse_api_keys() -> None:
    if g.get("api_key"):
        raise TwilioError(
            403, 20403, "API keys cannot access the Accounts resource; use the account SID and auth token"
        )


@bp.get(LIST_PATH, endpoint="ListAccount")
def list_accounts() -> Response:
    _refuse_api_keys()
    page, page_size, offset = paging(ACCOUNTS_MAX_PAGE_SIZE)
    name = request.args.get("FriendlyName")
    status = request.args.get("Status")
    if status is not None and status not in STATUSES:
        raise bad_param(f"Invalid Status {status!r}: must be one of {', '.join(STATUSES)}")
    found = [
        a
        for a in ctx().store.visible_accounts(account_sid())
        if (name is None or a.friendly_name == name) and (status is None or a.status == status)
    ]
    items = [account_resource(a) for a in found[offset : offset + page_size]]
    filters = {k: v for k, v in (("FriendlyName", name), ("Status", status)) if v is not None}

    def uri(p: int, token_offset: int | None) -> str:
        q: dict[str, Any] = {**filters, "PageSize": page_size, "Page": p}
        if token_offset is not None:
            q["PageToken"] = f"PT{token_offset}"
        return f"{LIST_PATH}?{urlencode(q)}"

    return jsonify(
        {
            "accounts": items,
            "end": offset + max(len(items), 1) - 1,
            "first_page_uri": uri(0, None),
            "next_page_uri": uri(page + 1, offset + page_size) if offset + page_size < len(found) else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": uri(page - 1, max(0, offset - page_size)) if page > 0 and offset > 0 else None,
            "start": offset,
            "uri": uri(page, offset if "PageToken" in request.args else None),
        }
    )


@bp.get("/2010-04-01/Accounts/<sid>.json", endpoint="FetchAccount")
def fetch_account(sid: str) -> Response:
    _refuse_api_keys()
    if not ACCOUNT_SID_RE.match(sid):
        raise not_found()
    store = ctx().store
    target = store.account(sid)
    if target is None:
        raise not_found()
    caller = store.account(account_sid())
    assert caller is not None
    if target.sid != caller.sid and not (caller.is_main and target.owner_account_sid == caller.sid):
        raise TwilioError(403, 20403, f"Forbidden: {caller.sid} cannot access account {sid}")
    return jsonify(account_resource(target))
