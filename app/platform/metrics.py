"""Prometheus metrics, one definition each, in two kinds.

- **Request metrics** (webhook outcomes) are counted by the web process that served the request with
  prometheus-client. gunicorn runs several processes, so they use multiprocess mode: values live in
  ``PROMETHEUS_MULTIPROC_DIR``, wiped when gunicorn starts (``deploy/gunicorn.conf.py``); dead workers are marked
  in ``child_exit``. They must not depend on Redis: "Redis unavailable" is one of the outcomes they count.
- **Cluster metrics** (days, bytes, copy durations, Twilio calls, jobs, polls) are produced mostly by RQ
  workers on many hosts that nothing scrapes (and by forked work horses, were RQ's forking worker class used).
  They are kept in one Redis hash (``ber:metrics``) and reported at scrape time by every web replica, so one
  scrape target sees the whole system and nothing grows per process. Gauges (queue depth, oldest uncopied
  day) are read at scrape; the feed gauges come from the poller's feed summaries (app/feeds/summary.py), so a
  scrape never computes coverage. Anonymous like every gauge here: no account label.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import redis

from app.platform.version import version

# prometheus-client opens its per-process files in this directory as soon as a metric is created: make sure it
# exists whichever process imports this first (gunicorn's on_starting hook empties it at server start).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

log = logging.getLogger(__name__)
HASH_KEY = "ber:metrics"
_redis: redis.Redis | None = None

WEBHOOKS = Counter(
    "relay_webhooks_total",
    "Webhook deliveries by outcome",
    ["outcome"],  # accepted, duplicate, throttled, early, rejected_token, rejected_signature, unavailable, too_large
)

CONSOLE_SIGNINS = Counter(
    "relay_console_signins_total",
    "Console sign-in attempts by outcome",
    ["outcome"],  # ok, refused (wrong token), limited (429: too many failures, app/platform/guess_limit.py)
)

API_AUTH = Counter(
    "relay_api_auth_total",
    "API requests refused by the ADMIN_TOKEN check",
    ["outcome"],  # refused (401: missing or wrong token), limited (429: too many failures, app/platform/guess_limit.py)
)

CLIENT_LIMITS = Counter(
    "relay_web_client_limit_refusals_total",
    "Connections and requests the web refused because one client held too much or too long (app/web/client_limits.py)",
    ["reason"],  # body_timeout (408), body_too_large (413), bodies_per_client (429), connections_per_client
)


def bind_redis(client: redis.Redis) -> None:
    """Where cluster metrics are counted (called once per process when its services are built)."""
    global _redis
    _redis = client


def cluster_counts() -> dict[str, float]:
    """Every cluster counter and histogram bucket, by field (``{name}|{label}={value},...``); raises RedisError
    when Redis does not answer, and is empty before ``bind_redis``."""
    if _redis is None:
        return {}
    raw = _redis.hgetall(HASH_KEY)
    return {(k.decode() if isinstance(k, bytes) else str(k)): float(v) for k, v in raw.items()}


def _field(name: str, labelnames: Sequence[str], values: Sequence[str]) -> str:
    return name + "|" + ",".join(f"{k}={v}" for k, v in zip(labelnames, values, strict=True))


def _parse_field(field: str) -> tuple[str, dict[str, str]]:
    name, _, labels = field.partition("|")
    return name, dict(pair.split("=", 1) for pair in labels.split(",") if pair)


def _write(ops: Callable[[Any], None]) -> None:
    """Metrics are best effort: a Redis hiccup must never fail the work being measured."""
    if _redis is None:
        return
    try:
        with _redis.pipeline(transaction=False) as pipe:
            ops(pipe)
            pipe.execute()
    except redis.RedisError as exc:
        log.debug("metric not recorded: %s", exc)


class ClusterCounter:
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        _CLUSTER.append(self)

    def labels(self, *values: str) -> _Child:
        return _Child(self, tuple(str(v) for v in values))

    def inc(self, amount: float = 1) -> None:
        _Child(self, ()).inc(amount)


class _Child:
    def __init__(self, parent: ClusterCounter, values: tuple[str, ...]) -> None:
        self.field = _field(parent.name, parent.labelnames, values)

    def inc(self, amount: float = 1) -> None:
        _write(lambda p: p.hincrbyfloat(HASH_KEY, self.field, amount))


class ClusterHistogram:
    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, ()
        self.buckets = tuple(sorted(buckets))
        _CLUSTER.append(self)

    def observe(self, value: float) -> None:
        def ops(p: Any) -> None:
            for bound in self.buckets:
                if value <= bound:
                    p.hincrby(HASH_KEY, f"{self.name}|le={bound}", 1)
            p.hincrby(HASH_KEY, f"{self.name}|le=+Inf", 1)
            p.hincrbyfloat(HASH_KEY, f"{self.name}|", value)  # no labels: the sum

        _write(ops)


_CLUSTER: list[ClusterCounter | ClusterHistogram] = []

TWILIO_CALLS = ClusterCounter("relay_twilio_api_calls", "Twilio API calls by operation and outcome", ["op", "status"])
DAYS = ClusterCounter("relay_days", "Days finished by the copy task, by result", ["result"])  # copied/empty/failed
COPY_BYTES = ClusterCounter("relay_copy_bytes", "Bytes copied into S3")
COPY_SECONDS = ClusterHistogram(
    "relay_copy_duration_seconds",
    "Time to copy one day file into S3",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
COPY_RETRIES = ClusterCounter("relay_copy_attempt_failures", "Copy attempts that failed (retried or final)", ["reason"])
JOBS = ClusterCounter("relay_jobs", "Jobs by lifecycle event", ["event"])  # submitted, adopted, done, failed, cancelled
RETENTION_WARNINGS = ClusterCounter(
    "relay_retention_warnings", "Days found uncopied while their Twilio file nears deletion"
)
POLLS = ClusterCounter("relay_polls", "Poller runs", ["outcome"])
SYNC_FAILURES = ClusterCounter("relay_sync_failures", "Syncs that could not use Twilio's answer", ["reason"])
TASKS_REFUSED = ClusterCounter(
    "relay_tasks_refused",
    "RQ jobs refused by the workers: not one of the relay's tasks (app/platform/queueing.py)",
    ["queue"],
)
BUCKET_PROBLEMS = ClusterCounter(
    "relay_bucket_problems",
    "Copied days whose object was found changed (corrupt) or gone (missing), by check (reconcile, verify)",
    ["check", "state"],
)
STORE_ANOMALIES = ClusterCounter(
    "relay_store_anomalies",
    "Writes after which S3 no longer held the verified object (workers.sink): deleted and written again",
    ["operation", "reason"],  # PutObject, PutObjectTagging, CompleteMultipartUpload; gone, size, etag
)
LAKE_DAYS = ClusterCounter("relay_lake_days", "Copied days loaded into the lake (issue 23), by result", ["result"])
EVENTS = ClusterCounter("relay_events", "Outbound events (app/jobs/events.py) by type and outcome", ["type", "outcome"])


class ClusterCollector:
    """Reads the cluster metrics hash and the live gauges at scrape time."""

    def __init__(self, gauges: Callable[[], dict[str, Any]]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        try:
            raw = cluster_counts()
            gauges = self.gauges()
        except redis.RedisError as exc:
            log.warning("cluster metrics unavailable: %s", exc)
            return
        values: dict[str, list[tuple[dict[str, str], float]]] = {}
        for field, value in raw.items():
            name, labels = _parse_field(field)
            values.setdefault(name, []).append((labels, value))
        for metric in _CLUSTER:
            yield from _family(metric, values.get(metric.name, []))
        depth = GaugeMetricFamily("relay_queue_depth", "Tasks waiting per RQ queue", labels=["queue"])
        for queue, count in gauges.get("queues", {}).items():
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily("relay_workers", "RQ workers registered", value=gauges.get("workers", 0))
        yield GaugeMetricFamily(
            "relay_oldest_uncopied_day_age_seconds",
            "Age of the oldest completed-but-not-copied day (Twilio deletes files after 7 days)",
            value=gauges.get("oldest_uncopied", 0),
        )
        yield GaugeMetricFamily("relay_failed_days", "Failed days of unfinished jobs", value=gauges.get("failed", 0))
        yield GaugeMetricFamily(
            "relay_poller_last_run_age_seconds",
            "Seconds since the last completed poll (+Inf: none yet)",
            value=gauges.get("poller_age", float("inf")),
        )
        yield GaugeMetricFamily(
            "relay_registry_lost",
            "1 while Redis has lost the registry (app/jobs/recovery.py)",
            value=gauges.get("lost", 0),
        )
        yield from _feed_families(gauges.get("feeds", []))
        yield from _account_families(gauges.get("accounts", {}))


def _feed_families(types: list[dict[str, Any]]) -> Iterator[Metric]:
    """Continuous sync per resource type, summed over accounts (app/feeds/summary.py): /metrics is scraped
    anonymously, so no account is named (issue 20); the admin token's /health names the feed that lags."""
    labels = ["resource_type"]
    days = GaugeMetricFamily("relay_feed_days", "Days of the feeds' windows by state", labels=[*labels, "state"])
    lag = GaugeMetricFamily(
        "relay_feed_lag_days",
        "Largest lag of the type's feeds: days between the newest day that can exist and a feed's newest copied day"
        " (window length if none)",
        labels=labels,
    )
    waiting = GaugeMetricFamily(
        "relay_feed_days_waiting_for_quota", "Missing days the planner could not submit today", labels=labels
    )
    feeds = GaugeMetricFamily("relay_feeds", "Feeds (one per account and resource type)", labels=labels)
    for t in types:
        rt = [t["resource_type"]]
        for state, count in t["counts"].items():
            days.add_metric([*rt, state], count)
        lag.add_metric(rt, t["lag"])
        waiting.add_metric(rt, t["waiting_for_quota"])
        feeds.add_metric(rt, t["feeds"])
    yield from (days, lag, waiting, feeds)


def _account_families(states: dict[str, int]) -> Iterator[Metric]:
    """Accounts per state (ok, credentials refused, suspended): counts, no account named (issue 20)."""
    family = GaugeMetricFamily("relay_accounts", "Accounts served, by state (ok: usable)", labels=["state"])
    for state, count in sorted(states.items()):
        family.add_metric([state], count)
    yield family


def _family(
    metric: ClusterCounter | ClusterHistogram, samples: Iterable[tuple[dict[str, str], float]]
) -> Iterator[Metric]:
    if isinstance(metric, ClusterHistogram):
        by_bound = {labels.get("le"): v for labels, v in samples if "le" in labels}
        total = next((v for labels, v in samples if not labels), 0.0)
        buckets = [(str(float(b)), by_bound.get(str(b), 0.0)) for b in metric.buckets]
        buckets.append(("+Inf", by_bound.get("+Inf", 0.0)))
        family = HistogramMetricFamily(metric.name, metric.documentation)
        family.add_metric([], buckets, total)
        yield family
        return
    family_c = CounterMetricFamily(metric.name, metric.documentation, labels=list(metric.labelnames))
    for labels, value in samples:
        family_c.add_metric([labels.get(k, "") for k in metric.labelnames], value)
    yield family_c


def render(cluster: ClusterCollector | None = None) -> tuple[bytes, str]:
    """The scrape body: request metrics (aggregated over processes in multiprocess mode) plus cluster metrics."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessLocal())
    if cluster is not None:
        registry.register(cluster)
    registry.register(_BuildInfo())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _BuildInfo:
    """``relay_build_info{version}`` 1: the version of the web replica answering the scrape
    (app/platform/version.py), so a
    dashboard shows a rolling upgrade. /metrics is for the scraper, not the public: deploy/README.md exposes only
    /hooks/ through the public Ingress."""

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("relay_build_info", "The relay's version (label), always 1", labels=["version"])
        info.add_metric([version()], 1)
        yield info


class _ProcessLocal:
    """This process's own request metrics when not running under a multiprocess server (tests, CLI)."""

    def collect(self) -> Iterator[Metric]:
        yield from WEBHOOKS.collect()
