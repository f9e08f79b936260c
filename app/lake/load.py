"""One call for the task that loads a verified day into the lake: open the table, stream, commit, report.

The caller (an RQ task on the lake's own queue, after the copy verified the day) passes a readable binary stream
of the day file as stored (e.g. the ``Body`` of an S3 GetObject: read sequentially, never whole), the day's
identity and the record count the copy verified. What comes back is what the task logs and records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from pyiceberg.catalog import Catalog

from app.lake.convert import DEFAULT_BATCH_ROWS, ConvertStats, DaySource, iter_batches
from app.lake.tables import DEFAULT_ATTEMPTS, commit_day, open_table, table_identifier


@dataclass(frozen=True)
class LoadResult:
    """A committed day: its table, rows, data files, snapshot, the commits it took, and the values that failed to
    parse (per column) and unknown fields (per name) now carried in ``_extra``."""

    table: str
    rows: int
    files: tuple[str, ...]
    snapshot_id: int | None
    attempts: int
    invalid: dict[str, int]
    unknown: dict[str, int]


def load_day(
    catalog: Catalog,
    namespace: str,
    fileobj: IO[bytes],
    source: DaySource,
    expected_records: int,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    attempts: int = DEFAULT_ATTEMPTS,
) -> LoadResult:
    """Replace the (source.account_sid, source.day) partition of the resource type's table by the day file's rows.

    Raises ``convert.BadDayFile`` (a line is not a JSON object), ``tables.RecordCountMismatch`` (rows !=
    ``expected_records``) or ``tables.LakeCommitError`` (every commit lost the race): nothing is committed then.
    A re-run of the same day replaces it, so the task may simply be retried.
    """
    table = open_table(catalog, namespace, source.resource_type)
    stats = ConvertStats()
    result = commit_day(
        table,
        iter_batches(fileobj, source, stats, batch_rows),
        account_sid=source.account_sid,
        day=source.day,
        expected_records=expected_records,
        resource_type=source.resource_type,
        snapshot_properties={"relay.source-key": source.source_key, "relay.source-sha256": source.source_sha256},
        attempts=attempts,
    )
    return LoadResult(
        table=table_identifier(namespace, source.resource_type),
        rows=result.rows,
        files=result.files,
        snapshot_id=result.snapshot_id,
        attempts=result.attempts,
        invalid=dict(stats.invalid),
        unknown=dict(stats.unknown),
    )
