"""The domain's error registry: what the core raises on purpose, and how the API and CLI show it.

Each error carries its HTTP status and title; the web has one handler for all of them (``app.__init__``) and the
CLI prints the message and exits with the status's code (``app.cli.client.exit_code_for``: 404 is 6, 429 is 7, ...
whether it ran in-process or over HTTP), so an error means the same thing everywhere. Twilio's errors
live with the client (``app.twilio.client``), the copy errors with the workers that raise them
(``workers.copy_errors``).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 500
    title = "error"

    def details(self) -> dict[str, Any]:
        """Extra fields for the JSON error body."""
        return {}

    def headers(self) -> dict[str, str]:
        """Extra HTTP response headers."""
        return {}


class RequestError(DomainError, ValueError):
    """Bad input from a user; nothing was stored."""

    status, title = 400, "invalid request"


class NotFound(DomainError, LookupError):
    """The job (or feed, day, ...) is not tracked here."""

    status, title = 404, "not found"


class Conflict(DomainError):
    """The request is valid but the thing is in the wrong state (cancel a finished job)."""

    status, title = 409, "conflict"


class QuotaExceeded(DomainError):
    """Today's share of Twilio's requested-days quota is used up, until 00:00 UTC."""

    status, title = 429, "quota exceeded"

    def __init__(self, used: int, wanted: int, quota: int) -> None:
        super().__init__(
            f"Twilio allows {quota} requested days per UTC day per account; {used} already requested today "
            f"through this service and this request needs {wanted}. Submit the rest after 00:00 UTC."
        )
        self.used = used
        self.wanted = wanted

    def details(self) -> dict[str, Any]:
        return {"used_today": self.used, "requested": self.wanted}


class TooManyAttempts(DomainError):
    """Too many failed authentications from this client: refused, credentials unread, until the window ends
    (``app.platform.guess_limit``)."""

    status, title = 429, "too many failed attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def details(self) -> dict[str, Any]:
        return {"retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SubmitUncertain(DomainError):
    """Twilio may have created the job but we could not learn or record it: retrying could duplicate it.

    Its pending record (saved before the create call, keyed by the webhook token) lets the poller adopt the
    job if it exists (``submission.reconcile_pending``), so the user should look at the job list rather than
    resubmit.
    """

    status, title = 502, "submission outcome unknown"
