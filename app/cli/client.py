"""What the ``relay`` CLI talks to: one small interface, two implementations, the API's JSON documents in between.

``HttpClient`` (``relay --url URL --token TOKEN``, or ``RELAY_URL`` / ``RELAY_TOKEN``) sends requests to the HTTP
API under ``/api`` with the bearer token, and needs nothing else: no Redis, no Twilio secret, no setting of the
service. ``LocalClient`` (``app.cli.local``, without a URL) calls the functions the API's views call, in-process,
with the service's own environment. Both return the documents the API answers, so the CLI renders one thing
(``--json`` prints it, a table for people) and a command gives the same output either way.

Every failure is a ``CliFailure``: one line for stderr and an exit status (``EXIT_CODES``, documented in
README.md, "Using it"), never a traceback.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

# Exit statuses of `relay` (README.md, "Using it"). Click's own usage errors are 2 already.
EXIT_OK = 0
EXIT_ERROR = 1  # the request was refused or failed (invalid input, conflict, Twilio refused or failed, ...)
EXIT_USAGE = 2  # bad options or arguments; a command that runs in-process only, given --url
EXIT_CONFIG = 3  # configuration missing or invalid (in-process: the service's settings; remote: --token)
EXIT_UNAVAILABLE = 4  # Redis, the relay (remote) or Twilio cannot be reached: try again later
EXIT_UNAUTHORIZED = 5  # the API refused the token (401) or the account (403)
EXIT_NOT_FOUND = 6  # no such job, feed, day or account (404)
EXIT_RATE_LIMITED = 7  # 429: too many failed authentications (Retry-After given) or the quota is used up
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "the request was refused or failed (the message says why)",
    EXIT_USAGE: "usage: bad option or argument, or an in-process-only command given --url",
    EXIT_CONFIG: "configuration missing or invalid",
    EXIT_UNAVAILABLE: "Redis, the relay or Twilio unreachable: try again later",
    EXIT_UNAUTHORIZED: "unauthorized: the token was refused (HTTP 401/403)",
    EXIT_NOT_FOUND: "not found (HTTP 404)",
    EXIT_RATE_LIMITED: "rate limited or quota used up (HTTP 429; the message gives Retry-After)",
}
TIMEOUT = (10, 120)  # connect, read (seconds): a submit may wait on Twilio's retries


class CliFailure(Exception):
    """One line for stderr and the exit status it means."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(status: int) -> int:
    """The exit status an HTTP status (or a domain error's) means; the same in both modes."""
    if status in (401, 403):
        return EXIT_UNAUTHORIZED
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 429:
        return EXIT_RATE_LIMITED
    if status == 503:
        return EXIT_UNAVAILABLE
    return EXIT_ERROR


def with_retry_after(message: str, retry_after: Any) -> str:
    return f"{message} (Retry-After: {retry_after} s)" if retry_after not in (None, "") else message


class Client(Protocol):
    """The operations of the CLI, each returning the API's document for it (``app/web/openapi.json``)."""

    def submit(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]: ...
    def list_jobs(self, page: int, page_size: int, account: str | None) -> dict[str, Any]: ...
    def job(self, job_sid: str, refresh: bool = False) -> dict[str, Any]: ...
    def cancel(self, job_sid: str) -> dict[str, Any]: ...
    def track(self, job_sid: str, resource_type: str | None, account: str | None) -> dict[str, Any]: ...
    def requeue(self, job_sid: str, days: list[str] | None) -> dict[str, Any]: ...
    def list_feeds(self) -> dict[str, Any]: ...
    def feed(self, resource_type: str, account: str | None) -> dict[str, Any]: ...
    def put_feed(self, resource_type: str, account: str | None, body: dict[str, Any]) -> dict[str, Any]: ...
    def delete_feed(self, resource_type: str, account: str | None) -> dict[str, Any]: ...
    def coverage(self, query: dict[str, str]) -> dict[str, Any]: ...
    def daily(self, resource_type: str, account: str | None) -> dict[str, Any]: ...
    def set_daily(self, resource_type: str, account: str | None, enabled: bool) -> dict[str, Any]: ...
    def copy_day(self, resource_type: str, day: str, account: str | None) -> dict[str, Any]: ...
    def delete_day(self, resource_type: str, day: str, account: str | None, reason: str | None) -> dict[str, Any]: ...
    def restore_day(self, resource_type: str, day: str, account: str | None) -> dict[str, Any]: ...
    def lifecycle_rule(self) -> dict[str, Any]: ...
    def accounts(self) -> dict[str, Any]: ...
    def twilio_jobs(self, resource_type: str, account: str | None, page: str, page_size: str) -> dict[str, Any]: ...
    def twilio_days(self, resource_type: str, account: str | None, page: str, page_size: str) -> dict[str, Any]: ...


def _query(**params: Any) -> dict[str, str]:
    return {k: str(v) for k, v in params.items() if v is not None}


class HttpClient:
    """The HTTP API with the bearer token; an answer other than 2xx becomes a ``CliFailure`` with the API's detail."""

    def __init__(self, url: str, token: str) -> None:
        import requests  # only the remote mode needs it

        self.base = url.rstrip("/") + "/api"
        self.session = requests.Session()
        from app.platform.version import version

        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": f"relay/{version()}"}
        )
        self.session.trust_env = True  # HTTPS_PROXY and REQUESTS_CA_BUNDLE work as everywhere else

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        import requests

        url = self.base + path
        try:
            response = self.session.request(method, url, json=body, params=params, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise CliFailure(f"cannot reach the relay at {self.base}: {type(exc).__name__}", EXIT_UNAVAILABLE) from exc
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if response.ok and doc is not None:
            return doc
        if response.status_code == 502 and isinstance(doc, dict) and "jobs" in doc:
            return doc  # a partial submission: some chunks exist and are tracked (``submit``)
        raise self._failure(response.status_code, doc, response.headers.get("Retry-After"))

    @staticmethod
    def _failure(status: int, doc: Any, retry_after: str | None) -> CliFailure:
        if not isinstance(doc, dict):
            return CliFailure(f"the relay answered HTTP {status} without a JSON document", exit_code_for(status))
        if status == 401:
            return CliFailure("unauthorized: the relay refused the token (HTTP 401)", EXIT_UNAUTHORIZED)
        message = str(doc.get("detail") or doc.get("error") or f"HTTP {status}")
        if status == 429:
            message = with_retry_after(message, retry_after or doc.get("retry_after"))
        return CliFailure(message, exit_code_for(status))

    def submit(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        doc = self._call("POST", "/jobs", body)
        if "jobs" in doc:
            return doc["jobs"], (doc.get("detail") or doc["error"]) if "error" in doc else None
        return [doc], None

    def list_jobs(self, page: int, page_size: int, account: str | None) -> dict[str, Any]:
        return self._call("GET", "/jobs", params=_query(page=page, page_size=page_size, account=account))

    def job(self, job_sid: str, refresh: bool = False) -> dict[str, Any]:
        path = f"/jobs/{quote(job_sid, safe='')}"
        return self._call("POST", path + "/refresh") if refresh else self._call("GET", path)

    def cancel(self, job_sid: str) -> dict[str, Any]:
        return self._call("DELETE", f"/jobs/{quote(job_sid, safe='')}")

    def track(self, job_sid: str, resource_type: str | None, account: str | None) -> dict[str, Any]:
        body = {"job_sid": job_sid} | _query(resource_type=resource_type, account=account)
        return self._call("POST", "/jobs/track", body)

    def requeue(self, job_sid: str, days: list[str] | None) -> dict[str, Any]:
        body = {"days": days} if days else None
        return self._call("POST", f"/jobs/{quote(job_sid, safe='')}/requeue", body)

    def list_feeds(self) -> dict[str, Any]:
        return self._call("GET", "/feeds")

    def feed(self, resource_type: str, account: str | None) -> dict[str, Any]:
        return self._call("GET", f"/feeds/{quote(resource_type, safe='')}", params=_query(account=account))

    def put_feed(self, resource_type: str, account: str | None, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/feeds/{quote(resource_type, safe='')}"
        return self._call("PUT", path, body, params=_query(account=account))

    def delete_feed(self, resource_type: str, account: str | None) -> dict[str, Any]:
        path = f"/feeds/{quote(resource_type, safe='')}"
        return self._call("DELETE", path, params=_query(account=account))

    def coverage(self, query: dict[str, str]) -> dict[str, Any]:
        return self._call("GET", "/coverage", params=query)

    def daily(self, resource_type: str, account: str | None) -> dict[str, Any]:
        return self._call("GET", f"/daily/{quote(resource_type, safe='')}", params=_query(account=account))

    def set_daily(self, resource_type: str, account: str | None, enabled: bool) -> dict[str, Any]:
        path = f"/daily/{quote(resource_type, safe='')}"
        return self._call("PUT", path, {"enabled": enabled}, params=_query(account=account))

    def copy_day(self, resource_type: str, day: str, account: str | None) -> dict[str, Any]:
        path = f"/days/{quote(resource_type, safe='')}/{quote(day, safe='')}/copy"
        return self._call("POST", path, params=_query(account=account))

    def delete_day(self, resource_type: str, day: str, account: str | None, reason: str | None) -> dict[str, Any]:
        path = f"/days/{quote(resource_type, safe='')}/{quote(day, safe='')}"
        body = {"by": "cli"} | ({"reason": reason} if reason is not None else {})
        return self._call("DELETE", path, body, params=_query(account=account))

    def restore_day(self, resource_type: str, day: str, account: str | None) -> dict[str, Any]:
        path = f"/days/{quote(resource_type, safe='')}/{quote(day, safe='')}/restore"
        return self._call("POST", path, params=_query(account=account))

    def lifecycle_rule(self) -> dict[str, Any]:
        return self._call("GET", "/lifecycle-rule")

    def accounts(self) -> dict[str, Any]:
        return self._call("GET", "/accounts")

    def twilio_jobs(self, resource_type: str, account: str | None, page: str, page_size: str) -> dict[str, Any]:
        params = _query(resource_type=resource_type, account=account, page=page, page_size=page_size)
        return self._call("GET", "/twilio/jobs", params=params)

    def twilio_days(self, resource_type: str, account: str | None, page: str, page_size: str) -> dict[str, Any]:
        path = f"/twilio/days/{quote(resource_type, safe='')}"
        return self._call("GET", path, params=_query(account=account, page=page, page_size=page_size))
