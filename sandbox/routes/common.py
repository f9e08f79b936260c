"""What every route module shares: the app's context, Twilio's error shape, input parsing and list paging.

Twilio's error JSON is ``{code, message, more_info, status}``; handlers raise :class:`TwilioError` and the
error handler in sandbox.routes.hooks renders it. Control-API errors are ``{"error", "status"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Response, current_app, g, jsonify, request

from sandbox import RESOURCE_TYPES
from sandbox.scenario import ScenarioError
from sandbox.state import Store
from sandbox.webhooks import Notifier

DEFAULT_PAGE_SIZE = 50
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class ApiSettings:
    """Credentials and the public base URLs (known once the listeners are bound)."""

    account_sid: str
    auth_token: str
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    api_url: str = ""
    files_url: str = ""


@dataclass
class SandboxContext:
    """What the blueprints reach through ``current_app``: the state, the webhook sender, the settings."""

    store: Store
    notifier: Notifier
    settings: ApiSettings


def ctx() -> SandboxContext:
    context: SandboxContext = current_app.extensions["sandbox"]
    return context


def account_sid() -> str:
    """The SID of the account this /v1 or Accounts API request authenticated as (see hooks.guard)."""
    sid: str = g.account_sid
    return sid


def base() -> str:
    """The API listener's public base URL (for ``url`` fields and paging links)."""
    return ctx().settings.api_url


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


def parse_day(value: str, name: str) -> date:
    if not DAY_RE.match(value):
        raise bad_param(f"Invalid {name}: {value!r} is not a date in the format yyyy-mm-dd")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise bad_param(f"Invalid {name}: {value!r} is not a valid date") from None


def resource_type(rt: str) -> str:
    """The path's ResourceType, exactly cased, else Twilio's 404."""
    if rt not in RESOURCE_TYPES:
        raise not_found()
    return rt


def valid_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


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


def list_meta(key: str, page: int, page_size: int, offset: int, total: int) -> dict[str, Any]:
    """The ``meta`` object of a v1 list answer; next/previous links carry a PageToken."""
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


def control_error(message: str, status: int = 400) -> Response:
    resp = jsonify({"error": message, "status": status})
    resp.status_code = status
    return resp


def json_body() -> dict[str, Any]:
    """The control request's JSON object ({} when empty); anything else is a ScenarioError (400)."""
    body = request.get_json(force=True, silent=True)
    if body is None and request.get_data():
        raise ScenarioError("body is not valid JSON")
    if body is not None and not isinstance(body, dict):
        raise ScenarioError("body must be a JSON object")
    return body or {}
