"""The ``relay`` CLI in-process (no ``--url``): the functions the API's views call, with the service's environment.

Each method answers the document its API operation answers (``app.web.api``, ``app.web.feeds_api``,
``app.web.at_twilio_api``), so ``app.cli.commands`` renders both modes alike; ``failure`` turns what the core raises
into
the ``CliFailure`` (one line, exit status) the same answer over HTTP gives. No admin token here: shell access to
the service's environment is already full access.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import TYPE_CHECKING, Any

import click
import redis

from app.cli.client import (
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    CliFailure,
    exit_code_for,
    with_retry_after,
)
from app.feeds import at_twilio, coverage, daily_exports, declared, tombstones
from app.feeds.lifecycle_rule import lifecycle_rule_doc
from app.jobs import ops, submission
from app.jobs.documents import MAX_PAGE, MAX_PAGE_SIZE, job_view
from app.platform.config import ConfigError
from app.platform.errors import DomainError
from app.platform.validation import bounded_int, parse_day, validate_resource_type
from app.twilio import accounts
from app.twilio.client import TwilioError, TwilioNotFound, TwilioUnavailable

if TYPE_CHECKING:
    from app.services import Services
    from app.twilio.accounts import Account


def failure(exc: BaseException) -> CliFailure | None:
    """The one line and exit status of an error the core raises (as the web's handlers answer it), else None."""
    if isinstance(exc, DomainError):
        message = with_retry_after(str(exc), exc.headers().get("Retry-After"))
        return CliFailure(message, exit_code_for(exc.status))
    if isinstance(exc, TwilioNotFound):
        return CliFailure(str(exc), EXIT_NOT_FOUND)
    if isinstance(exc, TwilioUnavailable):
        return CliFailure(f"Twilio unavailable, try again later: {exc}", EXIT_UNAVAILABLE)
    if isinstance(exc, TwilioError):
        return CliFailure(str(exc), EXIT_ERROR)
    if isinstance(exc, redis.RedisError):
        return CliFailure(f"storage unavailable: Redis is not reachable ({type(exc).__name__})", EXIT_UNAVAILABLE)
    if isinstance(exc, ConfigError):
        hint = "set the service's environment, or give --url and --token to use a relay over HTTP"
        return CliFailure(f"configuration: {exc} ({hint})", EXIT_CONFIG)
    return None


def services() -> Services:
    """The Flask app's services under ``flask --app app relay``; else built here from the environment, with no
    Flask app (the ``relay`` command)."""
    from flask.cli import ScriptInfo

    info = click.get_current_context().find_object(ScriptInfo)
    if info is not None:
        found: Services = info.load_app().extensions["relay"]
        return found
    return _standalone_services()


@functools.cache
def _standalone_services() -> Services:
    from app.platform.config import load_settings
    from app.platform.logs import JsonFormatter
    from app.services import build_services

    settings = load_settings()
    # Errors only, to stderr and scrubbed: stdout carries the command's output (``--json`` for scripts).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(settings.secrets))
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.ERROR)
    return build_services(settings)


class LocalClient:
    """``app.cli.client.Client`` in-process: what each API view does, without HTTP."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def _account(self, account: str | None) -> Account:
        return self.svc.accounts.resolve(account)

    def submit(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        result = submission.submit(self.svc, submission.SubmitRequest.from_body(body))
        views = [job_view(self.svc.days, j) for j in result.jobs]
        if result.error is None:
            return views, None
        if isinstance(result.error, redis.RedisError):
            return views, "storage unavailable: Redis is not reachable"
        return views, str(result.error)

    def list_jobs(self, page: int, page_size: int, account: str | None) -> dict[str, Any]:
        args = {"page": str(page), "page_size": str(page_size)}
        page = bounded_int(args, "page", 0, MAX_PAGE)
        size = bounded_int(args, "page_size", 50, MAX_PAGE_SIZE, low=1)
        sid = self._account(account).sid if account else None
        jobs, total = self.svc.jobs.list_jobs(offset=page * size, limit=size, account_sid=sid)
        return {
            "jobs": [job_view(self.svc.days, j) | {"days": None} for j in jobs],
            "meta": {"page": page, "page_size": size, "total": total, "has_more": (page + 1) * size < total},
        }

    def job(self, job_sid: str, refresh: bool = False) -> dict[str, Any]:
        job = ops.refresh(self.svc, job_sid) if refresh else ops.require_job(self.svc, job_sid)
        return job_view(self.svc.days, job)

    def cancel(self, job_sid: str) -> dict[str, Any]:
        return job_view(self.svc.days, ops.cancel(self.svc, job_sid))

    def track(self, job_sid: str, resource_type: str | None, account: str | None) -> dict[str, Any]:
        if resource_type is not None:
            validate_resource_type(resource_type)
        return job_view(self.svc.days, ops.adopt(self.svc, job_sid, resource_type, account))

    def requeue(self, job_sid: str, days: list[str] | None) -> dict[str, Any]:
        requeued = ops.requeue(self.svc, job_sid, days)
        return {"requeued": requeued, "job": job_view(self.svc.days, ops.require_job(self.svc, job_sid))}

    def list_feeds(self) -> dict[str, Any]:
        return {"feeds": [declared.feed_view(f) for f in self.svc.feeds.list_feeds()]}

    def feed(self, resource_type: str, account: str | None) -> dict[str, Any]:
        return declared.feed_view(declared.require_feed(self.svc.feeds, resource_type, self._account(account).sid))

    def put_feed(self, resource_type: str, account: str | None, body: dict[str, Any]) -> dict[str, Any]:
        feed = declared.feed_from_body(resource_type, body, self._account(account).sid)
        return declared.feed_view(declared.put_feed(self.svc.feeds, feed))

    def delete_feed(self, resource_type: str, account: str | None) -> dict[str, Any]:
        return declared.feed_view(declared.delete_feed(self.svc.feeds, resource_type, self._account(account).sid))

    def coverage(self, query: dict[str, str]) -> dict[str, Any]:
        rt, first, last, account = (query.get(k) for k in ("resource_type", "from", "to", "account"))
        return coverage.report(
            self.svc,
            validate_resource_type(rt) if rt is not None else None,
            parse_day(first, "from") if first is not None else None,
            parse_day(last, "to") if last is not None else None,
            self._account(account).sid if account else None,
        )

    def daily(self, resource_type: str, account: str | None) -> dict[str, Any]:
        return daily_exports.show(self.svc, resource_type, self._account(account))

    def set_daily(self, resource_type: str, account: str | None, enabled: bool) -> dict[str, Any]:
        return daily_exports.set_enabled(self.svc, resource_type, enabled, self._account(account))

    def copy_day(self, resource_type: str, day: str, account: str | None) -> dict[str, Any]:
        job = tombstones.copy_day(self.svc, resource_type, day, self._account(account))
        return job_view(self.svc.days, job)

    def delete_day(self, resource_type: str, day: str, account: str | None, reason: str | None) -> dict[str, Any]:
        return tombstones.delete_day(self.svc, resource_type, day, self._account(account), "cli", reason)

    def restore_day(self, resource_type: str, day: str, account: str | None) -> dict[str, Any]:
        return tombstones.restore_day(self.svc, resource_type, day, self._account(account))

    def lifecycle_rule(self) -> dict[str, Any]:
        return lifecycle_rule_doc(self.svc.settings, self.svc.feeds.list_feeds())

    def accounts(self) -> dict[str, Any]:
        return accounts.accounts_view(self.svc)

    def twilio_jobs(self, resource_type: str, account: str | None, page: str, page_size: str) -> dict[str, Any]:
        return at_twilio.twilio_jobs(self.svc, resource_type, self._account(account), *_paging(page, page_size))

    def twilio_days(self, resource_type: str, account: str | None, page: str, page_size: str) -> dict[str, Any]:
        return at_twilio.twilio_days(self.svc, resource_type, self._account(account), *_paging(page, page_size))


def _paging(page: str, page_size: str) -> tuple[int, int]:
    """The API's paging rules (``bounded_int``: digits only, in range), with the API's parameter names."""
    args = {"page": page, "page_size": page_size}
    return (
        bounded_int(args, "page", 0, at_twilio.MAX_PAGE),
        bounded_int(args, "page_size", 50, at_twilio.MAX_PAGE_SIZE, low=1),
    )
