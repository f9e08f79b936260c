"""Twilio's day statuses (the ``status`` of each ``details`` group of a job), lower-cased because Twilio's casing
has varied, and what each means to the relay."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

COPY_STATUSES = frozenset({"completed", "completedemptyrecords"})  # a file (or an empty day) to copy
FAILED_STATUSES = frozenset({"failed"})  # final at Twilio; a new job is needed
CANCELLED_STATUSES = frozenset({"deletedbyuserrequest", "runningtobedeleted"})
WAITING_STATUSES = frozenset({"submitted", "running", "errorduringrun"})  # ErrorDuringRun: Twilio retries
EMPTY = "completedemptyrecords"


def normalise(status: str) -> str:
    """Lower-case; any status we do not know counts as still running (waiting is safe, guessing final is not)."""
    value = status.lower()
    if value not in COPY_STATUSES | FAILED_STATUSES | CANCELLED_STATUSES | WAITING_STATUSES:
        log.warning("unknown Twilio day status %r: treated as still running", status)
        return "running"
    return value
