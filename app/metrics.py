"""Prometheus metrics, one definition each, shared by web and workers.

Under gunicorn (several processes) and RQ (a forked work horse per job) the values live in
``PROMETHEUS_MULTIPROC_DIR``: prometheus-client's multiprocess mode aggregates them at scrape time. The
directory is wiped when gunicorn starts (``deploy/gunicorn.conf.py``) and dead workers are marked in
``child_exit``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

WEBHOOKS = Counter(
    "relay_webhooks_total",
    "Webhook deliveries by outcome",
    ["outcome"],  # accepted, duplicate, rejected_token, rejected_signature, unavailable, too_large
)
TWILIO_CALLS = Counter("relay_twilio_api_calls_total", "Twilio API calls by operation and outcome", ["op", "status"])
DAYS = Counter("relay_days_total", "Days finished by the copy task, by result", ["result"])  # copied/empty/failed
COPY_BYTES = Counter("relay_copy_bytes_total", "Bytes copied into S3")
COPY_SECONDS = Histogram(
    "relay_copy_duration_seconds",
    "Time to copy one day file into S3",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
COPY_RETRIES = Counter("relay_copy_attempt_failures_total", "Copy attempts that failed (retried or final)", ["reason"])
JOBS = Counter("relay_jobs_total", "Jobs by lifecycle event", ["event"])  # submitted, adopted, done, failed, cancelled
QUEUE_DEPTH = Gauge("relay_queue_depth", "Tasks waiting per RQ queue", ["queue"], multiprocess_mode="livemax")
OLDEST_PENDING_DAY = Gauge(
    "relay_oldest_uncopied_day_age_seconds",
    "Age of the oldest completed-but-not-copied day file (Twilio deletes files after 7 days)",
    multiprocess_mode="livemax",
)
RETENTION_WARNINGS = Counter(
    "relay_retention_warnings_total", "Days found uncopied while their Twilio file nears deletion"
)
POLLS = Counter("relay_polls_total", "Poller runs", ["outcome"])


def render() -> tuple[bytes, str]:
    """The scrape body: aggregated over processes when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
