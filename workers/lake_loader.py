"""Load one verified copy of a day into the lake (issue 23), and record the outcome where an operator looks.

The copy (workers/day_copier.py) enqueues this on the lake's own queue once the day is copied, with what it
verified: the key, sha256 and record count. Here the stored object is streamed from S3 (the GetObject body, read
sequentially by ``app.lake.load.load_day``, never whole in memory) and committed as the (account, day) partition
of the resource type's table. The outcome goes on the day's coverage record (``lake``: ``loaded`` or ``failed``
with ``lake_error``), in ``relay_lake_days_total{result}`` and in the log.

Why a load is skipped: the day's coverage no longer holds this copy (another sha256: a newer file was copied, and
its own load is queued). Which failures are permanent: the object gone, a line that is not JSON, rows that differ
from the verified count; anything else (S3 or the catalog away, every commit lost a race) is raised for RQ's Retry,
and recorded as failed only on the last attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from app.feeds.store import CoverageDay
from app.lake.catalog import open_catalog
from app.lake.convert import BadDayFile, DaySource
from app.lake.load import load_day
from app.lake.orphans import expire_snapshots, remove_orphans
from app.lake.schemas import RESOURCE_TYPES
from app.lake.tables import RecordCountMismatch, open_table, table_identifier
from app.platform.config import LakeSettings
from app.platform.metrics import LAKE_DAYS
from app.services import Services
from app.twilio.accounts import owner_of
from workers.sink import S3Sink

log = logging.getLogger(__name__)

LOADED, FAILED, SKIPPED = "loaded", "failed", "skipped"
MAINTENANCE_MARGIN = timedelta(days=1)  # older than any load could take: see app/lake/orphans.py


class ObjectGone(Exception):
    """The day's object is not in the bucket any more: loading it again will not help."""


PERMANENT = (ObjectGone, BadDayFile, RecordCountMismatch)


@dataclass(frozen=True)
class LakeDay:
    """A verified copy of a day, as the copy recorded it."""

    account_sid: str
    resource_type: str
    day: str
    key: str
    sha256: str
    records: int

    @property
    def owner(self) -> str:
        return owner_of(self.resource_type, self.account_sid)

    @property
    def log_extra(self) -> dict[str, Any]:
        return {"account_sid": self.account_sid, "resource_type": self.resource_type, "day": self.day, "key": self.key}


def load_copied_day(svc: Services, sink: S3Sink, lake_day: LakeDay, final: bool) -> str:
    """LOADED, FAILED (a permanent failure, or any failure of the last attempt, which is raised again for RQ's
    failed registry) or SKIPPED (the coverage holds another copy of the day now)."""
    lake = svc.settings.lake
    if lake is None:
        return SKIPPED
    current = svc.feeds.get_day(lake_day.owner, lake_day.day)
    if current is None or current.sha256 != lake_day.sha256:
        LAKE_DAYS.labels(SKIPPED).inc()
        log.info("lake load skipped: the day holds another copy now", extra=lake_day.log_extra)
        return SKIPPED
    try:
        result = _load(lake, sink, lake_day)
    except PERMANENT as exc:
        _record(svc, lake_day, FAILED, f"{type(exc).__name__}: {exc}")
        return FAILED
    except Exception as exc:
        if final:
            _record(svc, lake_day, FAILED, f"{type(exc).__name__}: {exc}")
        else:
            log.warning("lake load failed, tried again: %s", exc, extra=lake_day.log_extra)
        raise
    _record(svc, lake_day, LOADED, None)
    log.info(
        "day loaded into the lake",
        extra=lake_day.log_extra | {"table": result.table, "rows": result.rows, "invalid": result.invalid},
    )
    return LOADED


def _load(lake: LakeSettings, sink: S3Sink, lake_day: LakeDay) -> Any:
    response = sink.unless_missing(
        "GetObject", lake_day.key, lambda: sink.client.get_object(Bucket=sink.bucket, Key=lake_day.key)
    )
    if response is None:
        raise ObjectGone(f"s3://{sink.bucket}/{lake_day.key} is not in the bucket")
    body = response["Body"]
    source = DaySource(
        resource_type=lake_day.resource_type,
        account_sid=lake_day.account_sid,
        day=date.fromisoformat(lake_day.day),
        source_key=lake_day.key,
        source_sha256=lake_day.sha256,
    )
    try:
        return load_day(open_catalog(lake), lake.namespace, body, source, lake_day.records)
    finally:
        body.close()


def _record(svc: Services, lake_day: LakeDay, state: str, error: str | None) -> None:
    """The outcome on the day's coverage record, if it still holds this copy (compared and replaced in one step:
    a copy recorded meanwhile is never overwritten), and in the metric."""
    LAKE_DAYS.labels(state).inc()
    if error is not None:
        log.error("lake load failed: %s", error, extra=lake_day.log_extra)
    current: CoverageDay | None = svc.feeds.get_day(lake_day.owner, lake_day.day)
    if current is None or current.sha256 != lake_day.sha256:
        return
    new = replace(current, lake=state, lake_error=error[:500] if error else None)
    svc.feeds.replace_days(lake_day.owner, {lake_day.day: (current, new)})


def maintain(lake: LakeSettings) -> dict[str, int]:
    """The janitor's part: per table, snapshots older than MAINTENANCE_MARGIN expired, then the data files no
    snapshot references removed (app/lake/orphans.py says why in that order)."""
    catalog = open_catalog(lake)
    expired = removed = 0
    for resource_type in RESOURCE_TYPES:
        if not catalog.table_exists(table_identifier(lake.namespace, resource_type)):
            continue  # no day of this type loaded yet: nothing to maintain
        table = open_table(catalog, lake.namespace, resource_type)
        expired += expire_snapshots(table, MAINTENANCE_MARGIN)
        removed += len(remove_orphans(table, MAINTENANCE_MARGIN))
    return {"expired_snapshots": expired, "removed_files": removed}
