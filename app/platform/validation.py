"""Checks of user input shared by the API, the CLI and the core; each failure is a ``RequestError`` (400)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, TypeVar

from flask import request

from app.platform.config import RESOURCE_TYPES
from app.platform.errors import RequestError

# \A...\Z, not ^...$ ("$" also matches before a trailing newline), so even a caller's .match() is exact.
DAY_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z")
JOB_SID_RE = re.compile(r"\AJS[0-9a-fA-F]{32}\Z")


def parse_day(value: Any, name: str) -> date:
    if not isinstance(value, str) or not DAY_RE.fullmatch(value):
        raise RequestError(f"{name} must be a day as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RequestError(f"{name} is not a real calendar day: {value}") from None


def validate_resource_type(value: Any) -> str:
    if value not in RESOURCE_TYPES:
        raise RequestError(f"resource_type must be one of {', '.join(RESOURCE_TYPES)}")
    return str(value)


LISTED_JOB_RE = re.compile(r"\AJD[0-9a-f]{32}\Z")  # local ids of listed day files (app.feeds.daily_exports)


def validate_job_sid(value: Any) -> str:
    if not isinstance(value, str) or not (JOB_SID_RE.fullmatch(value) or LISTED_JOB_RE.fullmatch(value)):
        raise RequestError("job_sid must look like JS followed by 32 hex digits")
    return value


_DIGITS_RE = re.compile(r"\A[0-9]{1,18}\Z")  # ASCII digits only; 18 of them always fit in a signed 64-bit int


def bounded_int(args: Mapping[str, str], name: str, default: int, high: int, low: int = 0) -> int:
    """A non-negative whole number from request arguments (``request.args``), ``low``..``high``; absent: ``default``.

    One rule for every number a request carries (API paging, the console's pages and years). Only ASCII digits
    pass: ``str.isdigit`` also accepts "²" (which ``int`` then refuses: a 500), and ``int`` alone accepts " 7",
    "+7", "7_0" and other scripts' digits (Arabic-Indic seven). Anything else, or a number out of range, is a
    RequestError (400)."""
    raw = args.get(name)
    if raw is None:
        return default
    if not _DIGITS_RE.fullmatch(raw):
        raise RequestError(f"{name} must be a whole number from {low} to {high} (digits 0-9 only)")
    value = int(raw)
    if not low <= value <= high:
        raise RequestError(f"{name} must be between {low} and {high}")
    return value


def only_args(args: Mapping[str, str], allowed: tuple[str, ...]) -> None:
    """Refuse query parameters an operation does not read (a misspelt filter is a 400, never silently ignored)."""
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "none"
        raise RequestError(f"unknown query parameter(s): {', '.join(unknown)} (this operation takes: {takes})")


View = TypeVar("View", bound=Callable[..., Any])


def query_args(*names: str, strict: bool = True) -> Callable[[View], View]:
    """Declare, in one place, the query parameters a view reads (``view.query_args``: app/web/openapi.json must document
    exactly these, tests/integration/test_api_contract.py checks it). ``strict`` (every /api route): any other
    parameter is a 400 before the view runs (``only_args``). Not strict: the webhook, whose URL Twilio may extend,
    and the probes (/livez, /metrics, ...), which answer whatever a load balancer or scraper appends."""

    def declare(view: View) -> View:
        def checked(*args: Any, **kwargs: Any) -> Any:
            only_args(request.args, names)
            return view(*args, **kwargs)

        wrapped: Any = functools.wraps(view)(checked) if strict else view
        wrapped.query_args = names
        wrapped.query_args_strict = strict
        return wrapped

    return declare
