"""Checks of user input shared by the API, the CLI and the core; each failure is a ``RequestError`` (400)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from app.config import RESOURCE_TYPES
from app.errors import RequestError
from app.twilio_api import DAY_RE, JOB_SID_RE


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


LISTED_JOB_RE = re.compile(r"\AJD[0-9a-f]{32}\Z")  # local ids of listed day files (app.daily_exports)


def validate_job_sid(value: Any) -> str:
    if not isinstance(value, str) or not (JOB_SID_RE.fullmatch(value) or LISTED_JOB_RE.fullmatch(value)):
        raise RequestError("job_sid must look like JS followed by 32 hex digits")
    return value
