"""The service objects one process needs, built once from Settings (web, CLI and workers alike)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import redis

from app.bucket.probe import ProbeStore
from app.feeds.coverage import CoverageKeeper
from app.feeds.store import FeedStore
from app.jobs.days import DayStore
from app.jobs.lifecycle import JobOutcomes
from app.jobs.marks import MarkStore
from app.jobs.store import JobStore
from app.jobs.tokens import TokenStore
from app.platform import metrics
from app.platform.config import Settings, load_settings
from app.platform.guess_limit import FailureCounts
from app.platform.locks import LockStore
from app.platform.queueing import Enqueuer
from app.platform.quota import QuotaStore
from app.platform.s3_client import make_s3_client
from app.twilio.account_states import AccountStateStore
from app.twilio.accounts import Account, AccountDirectory
from app.twilio.client import API_PROFILE, WORKER_PROFILE, BulkExportsClient, RetryProfile, discover_subaccounts

REDIS_TIMEOUTS = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0, "health_check_interval": 30}


@dataclass
class Services:
    settings: Settings
    jobs: JobStore  # job records, listing, schedule
    days: DayStore  # each job's day records
    tokens: TokenStore  # webhook tokens, pending submissions, the signed-webhook marker
    quota: QuotaStore  # Twilio's daily quota of requested days
    locks: LockStore  # locks across processes, once-only event claims, orphaned-task sightings
    account_states: AccountStateStore  # what may be shown about each account
    marks: MarkStore  # the registry's marker, the last poll
    feeds: FeedStore
    probes: ProbeStore  # the S3 store probe's cached findings
    auth_failures: FailureCounts  # failed console sign-ins and API tokens (app/platform/guess_limit.py)
    console_redis: redis.Redis  # only for the console's SessionStore (app/web/console/sessions.py): the web's
    enqueuer: Enqueuer
    twilio: BulkExportsClient  # TWILIO_ACCOUNT_SID's; twilio_for(sid) for any account served
    rq_connection: redis.Redis
    accounts: AccountDirectory
    job_outcomes: JobOutcomes  # where a final job's day outcomes go: the feeds' coverage
    profile: RetryProfile = API_PROFILE
    _clients: dict[str, BulkExportsClient] = field(default_factory=dict, repr=False)
    _s3: Any = field(default=None, repr=False)
    _s3_probe: Any = field(default=None, repr=False)
    cache: dict[str, tuple[float, Any]] = field(default_factory=dict, repr=False)  # short-lived health results

    def twilio_for(self, account_sid: str) -> BulkExportsClient:
        """The BulkExports client of one account, with its own credentials (made once per account)."""
        if not account_sid or account_sid == self.twilio.account_sid:
            return self.twilio
        client = self._clients.get(account_sid)
        if client is None:
            account = self.accounts.get(account_sid)
            username = account.api_key_sid or account.sid
            password = account.api_key_secret or account.auth_token
            client = BulkExportsClient(self.settings, self.profile, (account.sid, username, password))
            self._clients[account_sid] = client
        return client

    def s3_client(self) -> Any:
        """A boto3 S3 client from the standard AWS_* variables, made on first use (workers build their sink
        from it)."""
        if self._s3 is None:
            self._s3 = make_s3_client()
        return self._s3

    def s3_probe_client(self) -> Any:
        """The same, for health checks: 2-s timeouts and a single attempt, so a hung S3 answers in seconds."""
        if self._s3_probe is None:
            self._s3_probe = make_s3_client(max_pool_connections=2, quick=True)
        return self._s3_probe


def _redis_pool(url: str, **kwargs: Any) -> redis.BlockingConnectionPool:
    """Capped and blocking: under gunicorn's gevent worker every open request runs at once, and redis-py's default
    pool answers "Too many connections" past 100 (a 503); here a burst waits up to 5 s for a connection."""
    return redis.BlockingConnectionPool.from_url(url, max_connections=50, timeout=5, **REDIS_TIMEOUTS, **kwargs)


def build_services(settings: Settings, profile: RetryProfile = API_PROFILE) -> Services:
    # The stores read text; RQ needs bytes (its job hashes hold compressed data), hence two clients on one URL.
    text = redis.Redis(connection_pool=_redis_pool(settings.redis_url, decode_responses=True))
    raw = redis.Redis(connection_pool=_redis_pool(settings.redis_url))
    metrics.bind_redis(text)
    locks = LockStore(text)
    feeds = FeedStore(text)
    return Services(
        settings=settings,
        jobs=JobStore(text, settings.job_retention_days, settings.twilio_account_sid),
        days=DayStore(text),
        tokens=TokenStore(text, settings.twilio_account_sid),
        quota=QuotaStore(text, settings.daily_day_quota, settings.twilio_account_sid),
        locks=locks,
        account_states=AccountStateStore(text),
        marks=MarkStore(text),
        feeds=feeds,
        probes=ProbeStore(text),
        auth_failures=FailureCounts(text),
        console_redis=text,
        enqueuer=Enqueuer(raw, locks, settings.copy_retry_intervals),
        twilio=BulkExportsClient(settings, profile),
        rq_connection=raw,
        accounts=AccountDirectory(settings, functools.partial(_discover, settings)),
        job_outcomes=CoverageKeeper(feeds, settings.sync),
        profile=profile,
    )


def _discover(settings: Settings, parent: Account) -> list[dict[str, Any]]:
    return discover_subaccounts(
        settings, parent.sid, parent.api_key_sid or parent.sid, parent.api_key_secret or parent.auth_token
    )


@functools.cache
def worker_services() -> Services:
    """One Services per worker process, built once and reused by every task it runs (no fork per task)."""
    return build_services(load_settings(), WORKER_PROFILE)


def current_services() -> Services:
    """The Services of the Flask app handling this request or CLI command (set by ``create_app``)."""
    from flask import current_app

    services: Services = current_app.extensions["relay"]
    return services
