"""The service objects one process needs, built once from Settings (web, CLI and workers alike)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import redis

from app import metrics
from app.config import Settings, load_settings
from app.queueing import Enqueuer
from app.registry import Registry
from app.twilio_api import API_PROFILE, WORKER_PROFILE, BulkExportsClient, RetryProfile

REDIS_TIMEOUTS = {"socket_connect_timeout": 2.0, "socket_timeout": 5.0, "health_check_interval": 30}


@dataclass
class Services:
    settings: Settings
    registry: Registry
    enqueuer: Enqueuer
    twilio: BulkExportsClient
    rq_connection: redis.Redis


def build_services(settings: Settings, profile: RetryProfile = API_PROFILE) -> Services:
    # Registry reads text; RQ needs bytes (it pickles), hence two clients on the same URL.
    text = redis.Redis.from_url(settings.redis_url, decode_responses=True, **REDIS_TIMEOUTS)
    raw = redis.Redis.from_url(settings.redis_url, **REDIS_TIMEOUTS)
    metrics.bind_redis(text)
    return Services(
        settings=settings,
        registry=Registry(text, settings.job_retention_days, settings.daily_day_quota),
        enqueuer=Enqueuer(raw, settings.copy_retry_intervals),
        twilio=BulkExportsClient(settings, profile),
        rq_connection=raw,
    )


@functools.cache
def worker_services() -> Services:
    """One Services per worker process (RQ forks a work horse per job; the fork inherits nothing it needs)."""
    return build_services(load_settings(), WORKER_PROFILE)
