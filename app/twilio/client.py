"""The BulkExports client: every HTTP call to Twilio goes through here.

Built on twilio-python's REST client (auth, paging, error parsing) with one addition: a urllib3 ``Retry`` policy
mounted on its session, so 429 (honouring ``Retry-After``, capped) and 5xx/connection errors are retried with
backoff and jitter below the SDK. A POST is only retried on 429 (Twilio never processed it) or a failed connect:
a 5xx or a timeout after sending may have created the job, so ``create_job`` looks for it by our webhook token
before reporting failure — that is how a retry never creates a duplicate job.

Answers are validated: Twilio may return nulls (a fresh job's ``resource_type`` and ``details``), so callers keep
what they sent and use :func:`parse_details` for the rest.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlsplit

from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.util.retry import Retry

from app.platform.config import Settings
from app.platform.metrics import TWILIO_CALLS
from app.platform.validation import DAY_RE, JOB_SID_RE

log = logging.getLogger(__name__)
# twilio-python logs response headers at INFO, including the presigned Location of FetchDay: keep it quiet.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

T = TypeVar("T")
LIST_DAYS_PAGE_SIZE = 400  # the spec's maximum since July 2025
LIST_JOBS_PAGE_SIZE = 1000
ACCOUNTS_PAGE_SIZE = 100
ACCOUNTS_LIST_PATH = "/2010-04-01/Accounts.json"


class TwilioError(Exception):
    """Base class; ``status`` is the HTTP status (0 when no answer was received)."""

    def __init__(self, message: str, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class TwilioUnavailable(TwilioError):
    """Rate limited, server error or network failure after our retries: try again later."""


class TwilioRejected(TwilioError):
    """Twilio refused the request (4xx): retrying the same request will not help."""


class TwilioNotFound(TwilioRejected):
    """404: the job or day does not exist (any more)."""


class _Retry(Retry):
    """urllib3 Retry that never repeats a POST unless Twilio said 429 (Retry-After is capped by urllib3's own
    ``retry_after_max``, which, unlike an attribute of ours, survives the copy urllib3 makes at every retry)."""

    def _is_method_retryable(self, method: str) -> bool:
        return method.upper() in ("GET", "DELETE", "HEAD")

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and self.total:
            return True
        return super().is_retry(method, status_code, has_retry_after)


@dataclass(frozen=True)
class RetryProfile:
    """How hard to try before giving up; the API profile keeps a user request under ~30 s."""

    attempts: int
    read_timeout: float
    backoff_factor: float
    max_retry_after: int


API_PROFILE = RetryProfile(attempts=3, read_timeout=6, backoff_factor=0.5, max_retry_after=5)
WORKER_PROFILE = RetryProfile(attempts=5, read_timeout=20, backoff_factor=1, max_retry_after=30)


def retrying_http_client(profile: RetryProfile) -> TwilioHttpClient:
    """twilio-python's HTTP client with the profile's retries: 429 and 5xx retried with jittered backoff, Twilio's
    Retry-After honoured up to the profile's cap on every retry, POST repeated only after a 429 (a create that
    may have happened is never sent twice)."""
    http = TwilioHttpClient(timeout=profile.read_timeout)
    retry = _Retry(
        total=profile.attempts - 1,
        connect=profile.attempts - 1,
        read=profile.attempts - 1,
        status=profile.attempts - 1,
        status_forcelist=(429, 500, 502, 503, 504),
        backoff_factor=profile.backoff_factor,
        backoff_jitter=profile.backoff_factor,
        backoff_max=8,
        respect_retry_after_header=True,
        retry_after_max=profile.max_retry_after,
        raise_on_status=False,  # hand the last answer to the SDK, which raises TwilioRestException
        raise_on_redirect=False,
        redirect=0,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    assert http.session is not None
    http.session.mount("https://", adapter)
    http.session.mount("http://", adapter)
    http.session.trust_env = False  # no netrc or proxy surprises from the environment
    return http


@dataclass
class DayDetail:
    status: str
    days: list[str] | None
    count: int | None


@dataclass
class TwilioJob:
    job_sid: str
    resource_type: str | None
    start_day: str | None
    end_day: str | None
    friendly_name: str | None
    webhook_url: str | None
    webhook_method: str | None
    details: list[DayDetail]
    job_queue_position: str | None = None
    estimated_completion_time: str | None = None
    email: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        """What we keep of Twilio's view (no webhook URL: it carries our token)."""
        return {
            "details": [{"status": d.status, "count": d.count, "days": d.days} for d in self.details],
            "job_queue_position": self.job_queue_position,
            "estimated_completion_time": self.estimated_completion_time,
        }


@dataclass(frozen=True)
class DayFile:
    day: str
    size: int
    create_date: str | None
    resource_type: str | None
    friendly_name: str | None = None  # the FriendlyName of the job that made the file


@dataclass(frozen=True)
class ExportConfig:
    """An ExportConfiguration as Twilio shows it (``webhook_url`` holds our token: never log or return it)."""

    enabled: bool
    webhook_url: str | None
    webhook_method: str | None


def _export_config(instance: Any) -> ExportConfig:
    if not isinstance(instance.enabled, bool):
        raise TwilioError(f"Twilio's export configuration has no boolean 'enabled' ({instance.enabled!r})")
    return ExportConfig(instance.enabled, instance.webhook_url or None, instance.webhook_method or None)


def parse_details(raw: Any) -> list[DayDetail]:
    """Accept every shape ``details`` has had: a list, a legacy dict keyed "0","1",..., a single object, or null."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        items = list(raw.values()) if all(str(k).isdigit() for k in raw) else [raw]
    elif isinstance(raw, list):
        items = raw
    else:
        raise TwilioError(f"unexpected 'details' shape from Twilio: {type(raw).__name__}")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("status"), str):
            raise TwilioError(f"unexpected 'details' entry from Twilio: {item!r:.200}")
        out.append(DayDetail(status=item["status"], days=_days(item.get("days")), count=_count(item.get("count"))))
    return out


def _days(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    parsed = [_day_of(d) for d in raw] if isinstance(raw, list) else [None]
    days = [d for d in parsed if d is not None]
    if len(days) != len(parsed):
        raise TwilioError(f"unexpected 'days' list in Twilio details: {raw!r:.200}")
    return days


def _day_of(value: Any) -> str | None:
    """ "2026-11-01", or a timestamp on that day ("2026-11-01T00:00:00Z") -> "2026-11-01"; else None."""
    if not isinstance(value, str) or not DAY_RE.fullmatch(value[:10]) or value[10:11] not in ("", "T", " "):
        return None
    return value[:10]


def _count(value: Any) -> int | None:
    """A group's day count: an int, an integral float or a digit string; anything else is an unreadable answer."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, bool) or not str(value).isdigit():
        raise TwilioError(f"unexpected 'count' in Twilio details: {value!r:.50}")
    return int(value)


def _job_from_payload(payload: dict[str, Any]) -> TwilioJob:
    sid = payload.get("job_sid")
    if not isinstance(sid, str) or not JOB_SID_RE.fullmatch(sid):
        raise TwilioError(f"Twilio answered without a valid job_sid: {sid!r}")
    return TwilioJob(
        job_sid=sid,
        resource_type=payload.get("resource_type"),
        start_day=payload.get("start_day"),
        end_day=payload.get("end_day"),
        friendly_name=payload.get("friendly_name"),
        webhook_url=payload.get("webhook_url"),
        webhook_method=payload.get("webhook_method"),
        details=parse_details(payload.get("details")),
        job_queue_position=_str_or_none(payload.get("job_queue_position")),
        estimated_completion_time=_str_or_none(payload.get("estimated_completion_time")),
        email=_str_or_none(payload.get("email")),
        raw=payload,
    )


_JOB_FIELDS = tuple(f.name for f in fields(TwilioJob) if f.name != "raw")  # the payload's names


def _fields(instance: Any) -> dict[str, Any]:
    """The SDK's instance attributes back as the JSON payload they were parsed from."""
    return {name: getattr(instance, name, None) for name in _JOB_FIELDS}


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def classify_error(exc: Exception, what: str) -> TwilioError:
    """What the SDK raised, as the relay's TwilioError kinds (rejected, not found, unavailable), by Twilio's answer."""
    if isinstance(exc, TwilioRestException):
        return _by_status(int(exc.status or 0), exc.code, exc.msg, what)
    page_answer = exc.args[1] if isinstance(exc, TwilioException) and len(exc.args) > 1 else None
    if page_answer is not None and isinstance(getattr(page_answer, "status_code", None), int):
        # The SDK's list paging raises a bare TwilioException("Unable to fetch page", response) on any non-200:
        # classify it by the answer as well, or a refused ListDay (403) would be retried as if Twilio were down.
        code, message = _error_body(getattr(page_answer, "text", ""))
        return _by_status(page_answer.status_code, code, message, what)
    return TwilioUnavailable(f"{what}: {type(exc).__name__}: {exc}", 0)


def _by_status(status: int, code: int | None, message: str, what: str) -> TwilioError:
    text = f"{what}: Twilio answered {status}: {message}"
    if status == 404:
        return TwilioNotFound(text, status, code)
    if status == 429 or status >= 500 or status == 0:
        return TwilioUnavailable(text, status, code)
    return TwilioRejected(text, status, code)


def _error_body(text: Any) -> tuple[int | None, str]:
    """Twilio's error JSON ({code, message, ...}), tolerating anything else."""
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        return None, str(text)[:200]
    if not isinstance(body, dict):
        return None, str(text)[:200]
    code = body.get("code")
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), str(body.get("message", ""))[:200]


_NETWORK_ERRORS: tuple[type[Exception], ...] = (TwilioException, OSError, ValueError)


def _call(op: str, what: str, func: Callable[[], T]) -> T:
    """Run one SDK call: count it by outcome, and turn SDK/network errors into our typed errors."""
    try:
        result = func()
    except _NETWORK_ERRORS as exc:
        err = classify_error(exc, what)
        TWILIO_CALLS.labels(op, str(err.status or "error")).inc()
        raise err from exc
    TWILIO_CALLS.labels(op, "ok").inc()
    return result


Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) with the scheme's default port filled in; None for anything that is not http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip(".").lower(), port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True)
class PagingScope:
    """Where a list's next pages may be: the configured base URL's origin (``setting`` names it in errors) and,
    when given, the list's own path (the 2010 API's relative ``next_page_uri`` is appended to the base URL, so an
    absolute URL there would otherwise become a request for a stray path on the right host)."""

    origin: Origin | None
    setting: str
    path: str | None = None

    def refusal(self, next_url: str) -> str | None:
        """Why ``next_url`` must not be requested with our credentials; None when it may."""
        where = origin_of(next_url)
        if where != self.origin:
            host = where[1] if where else "an invalid URL"
            return f"points at {host}, not the configured {self.setting}; not followed (credentials go there only)"
        if self.path is not None and urlsplit(next_url).path != self.path:
            return f"leaves {self.path}; not followed (the next page of a list is on that list's path)"
        return None


def _paged(op: str, what: str, first_page: Callable[[], Any], scope: PagingScope) -> Iterator[Any]:
    """Follow Twilio's next page links through the SDK's Page objects, metering each page request. The SDK requests
    whatever absolute URL ``meta.next_page_url`` holds (or ``next_page_uri`` appended to the base URL) with our
    Basic auth: a link outside ``scope`` is refused before anything is sent there."""
    page = _call(op, what, first_page)
    while page is not None:
        yield from page
        next_url = page.next_page_url
        refusal = scope.refusal(next_url) if next_url else None
        if refusal:
            TWILIO_CALLS.labels(op, "refused").inc()
            raise TwilioError(f"{what}: Twilio's next_page_url {refusal}")
        page = _call(op, what, page.next_page)


Credentials = tuple[str, str, str | None]  # account SID, Basic-auth username (AC… or SK…), password


def discover_subaccounts(settings: Settings, sid: str, username: str, password: str | None) -> list[dict[str, Any]]:
    """The parent's subaccounts from the Accounts API (/2010-04-01/Accounts.json), each with its auth token and
    status; the parent itself is left out. Paged like BulkExports: next pages on TWILIO_API_BASE_URL's origin and
    the list's path only, or TwilioError (the parent's Basic auth never leaves that host)."""
    client = Client(username, password, account_sid=sid, http_client=retrying_http_client(API_PROFILE))
    client.api.base_url = settings.accounts.api_base_url
    path = urlsplit(client.api.absolute_url(ACCOUNTS_LIST_PATH)).path
    scope = PagingScope(origin_of(settings.accounts.api_base_url), "TWILIO_API_BASE_URL", path)
    first = functools.partial(client.api.v2010.accounts.page, page_size=ACCOUNTS_PAGE_SIZE)
    found = list(_paged("list_accounts", "list subaccounts", first, scope))
    return [
        {
            "sid": a.sid,
            "friendly_name": a.friendly_name,
            "auth_token": a.auth_token,
            "status": a.status,
            "owner_account_sid": a.owner_account_sid,
        }
        for a in found
        if a.sid != sid and a.owner_account_sid == sid
    ]


class BulkExportsClient:
    """Thin, typed wrapper over twilio-python's BulkExports v1 resources."""

    def __init__(
        self, settings: Settings, profile: RetryProfile = WORKER_PROFILE, credentials: Credentials | None = None
    ) -> None:
        """``credentials``: (account SID, username, password) of another account than TWILIO_ACCOUNT_SID's."""
        account_sid, username, password = credentials or (
            settings.twilio_account_sid,
            settings.twilio_api_key_sid or settings.twilio_account_sid,
            settings.twilio_api_key_secret or settings.twilio_auth_token,
        )
        self.account_sid = account_sid
        self._client = Client(username, password, account_sid=account_sid, http_client=retrying_http_client(profile))
        self._client.bulkexports.base_url = settings.twilio_base_url
        self._v1 = self._client.bulkexports.v1
        self._scope = PagingScope(origin_of(settings.twilio_base_url), "TWILIO_BULKEXPORTS_BASE_URL")

    def create_job(
        self,
        resource_type: str,
        start_day: str,
        end_day: str,
        friendly_name: str,
        webhook_url: str | None,
        webhook_method: str,
        email: str | None = None,
    ) -> TwilioJob:
        """Create an ExportCustomJob (without a webhook when ``webhook_url`` is None: the poller finishes it). An
        ambiguous failure raises: the caller looks for the job by its mark (``app.jobs.submission``)."""
        jobs = self._v1.exports(resource_type).export_custom_jobs
        kwargs: dict[str, Any] = {"webhook_url": webhook_url, "webhook_method": webhook_method} if webhook_url else {}
        if email:
            kwargs["email"] = email
        instance = _call(
            "create_job",
            f"create {resource_type} job",
            lambda: jobs.create(start_day=start_day, end_day=end_day, friendly_name=friendly_name, **kwargs),
        )
        return _job_from_payload(_fields(instance))

    def list_jobs(self, resource_type: str) -> Iterator[TwilioJob]:
        resource = self._v1.exports(resource_type).export_custom_jobs
        first = functools.partial(resource.page, page_size=LIST_JOBS_PAGE_SIZE)
        pages = _paged("list_jobs", f"list {resource_type} jobs", first, self._scope)
        for instance in pages:
            yield _job_from_payload(_fields(instance))

    def fetch_job(self, job_sid: str) -> TwilioJob:
        instance = _call("fetch_job", f"fetch job {job_sid}", self._v1.exports.jobs(job_sid).fetch)
        return _job_from_payload(_fields(instance))

    def delete_job(self, job_sid: str) -> None:
        _call("delete_job", f"delete job {job_sid}", self._v1.exports.jobs(job_sid).delete)

    def day_link(self, resource_type: str, day: str) -> str:
        """FetchDay without following the 307: a fresh single-use presigned link, never fetched here."""
        instance = _call(
            "fetch_day", f"fetch day {resource_type}/{day}", self._v1.exports(resource_type).days(day).fetch
        )
        link = instance.redirect_to
        if not isinstance(link, str) or not link.startswith(("https://", "http://")):
            raise TwilioError(f"FetchDay {resource_type}/{day} gave no usable redirect_to")
        return link

    def fetch_export_configuration(self, resource_type: str) -> ExportConfig:
        """The daily auto-export settings of a resource type (Twilio Editions)."""
        what = f"fetch {resource_type} export configuration"
        instance = _call("fetch_export_configuration", what, self._v1.export_configuration(resource_type).fetch)
        return _export_config(instance)

    def update_export_configuration(
        self, resource_type: str, enabled: bool, webhook_url: str | None, webhook_method: str
    ) -> ExportConfig:
        """Turn daily auto-export on or off; Twilio refuses it (4xx) for accounts without Editions."""
        kwargs: dict[str, Any] = {"enabled": enabled}
        if webhook_url is not None:
            kwargs |= {"webhook_url": webhook_url, "webhook_method": webhook_method if webhook_url else ""}
        resource = self._v1.export_configuration(resource_type)
        what = f"update {resource_type} export configuration"
        return _export_config(_call("update_export_configuration", what, lambda: resource.update(**kwargs)))

    def list_days(self, resource_type: str) -> Iterator[DayFile]:
        """Every day file Twilio holds for the resource type (paged by the SDK, 400 a page)."""
        resource = self._v1.exports(resource_type).days
        first = functools.partial(resource.page, page_size=LIST_DAYS_PAGE_SIZE)
        pages = _paged("list_days", f"list {resource_type} days", first, self._scope)
        for inst in pages:
            if not isinstance(inst.day, str) or not DAY_RE.fullmatch(inst.day):
                log.warning("ignoring a Day entry without a valid day: %r", inst.day)
                continue
            if not isinstance(inst.size, int) or inst.size < 0:
                log.warning("ignoring Day %s with invalid size %r", inst.day, inst.size)
                continue
            yield DayFile(inst.day, inst.size, inst.create_date, inst.resource_type, inst.friendly_name)
