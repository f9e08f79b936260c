"""Open the lake's tables and commit one (account, day) partition atomically.

How a day is committed (``commit_day``), and why this way:

1. The batches are written as Parquet files, batch by batch, straight to the table's data location through the
   table's own FileIO (``pq.ParquetWriter`` on ``io.new_output(...).create()``), rolling to a new file every
   ``file_rows`` rows. pyiceberg 0.12's ``overwrite``/``append`` take a whole ``pa.Table`` (the whole day in
   memory); this way memory stays at one batch plus the S3 upload buffers, whatever the size of the day.
2. The rows written are compared with ``expected_records`` (the count the copy verified). A mismatch refuses the
   day (``RecordCountMismatch``): the files are deleted and nothing is committed.
3. One transaction deletes the partition (``delete`` of ``account_sid = … AND day = …``: whole files only, since
   the filter is exactly the partition) and adds the new files (``add_files``, which reads their footers for the
   statistics); ``commit_transaction`` makes both one atomic catalog commit. A re-run replaces, never doubles.
4. A commit that loses the optimistic-concurrency race (``CommitFailedException``: another worker committed to the
   same table first) is redone on a refreshed table (its delete then sees the other commit's files), up to
   ``attempts`` times with jittered exponential backoff. The tables are created with pyiceberg's own commit
   retries off (``commit.retry.num-retries=0``) so that every retry goes through this one loop.

A commit that dies between steps 1 and 3 leaves files no snapshot references: ``app.lake.orphans`` finds them.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import And, BooleanExpression, EqualTo
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform

from app.lake.schemas import (
    PARTITION_COLUMNS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_PROPERTY,
    TABLE_NAMES,
    arrow_schema,
    iceberg_schema,
)

DEFAULT_ATTEMPTS = 8
DEFAULT_FILE_ROWS = 1_000_000
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 5.0

MANAGED_PROPERTIES = {
    "commit.retry.num-retries": "0",  # every retry goes through commit_day's own loop (see above)
    "write.metadata.delete-after-commit.enabled": "true",  # keep the last 100 metadata files, not every one
    "write.metadata.previous-versions-max": "100",
}
"""Table properties ``open_table`` sets at creation and ``evolve_table`` brings an existing table to."""


class LakeCommitError(RuntimeError):
    """A day could not be committed; nothing was (the partition is as it was)."""


class RecordCountMismatch(LakeCommitError):
    """The rows converted from the day file differ from the records the copy verified."""


@dataclass(frozen=True)
class CommitResult:
    """What ``commit_day`` committed: rows, data files, the snapshot that holds them, and the tries it took."""

    rows: int
    files: tuple[str, ...]
    snapshot_id: int | None
    attempts: int
    table: Table = field(repr=False)


def table_identifier(namespace: str, resource_type: str) -> str:
    """``<namespace>.<messages|calls|conferences|participants>``."""
    if resource_type not in TABLE_NAMES:
        raise ValueError(f"unknown resource type {resource_type!r}; expected one of {tuple(TABLE_NAMES)}")
    return f"{namespace}.{TABLE_NAMES[resource_type]}"


def partition_spec(resource_type: str) -> PartitionSpec:
    """identity(account_sid), identity(day)."""
    schema = iceberg_schema(resource_type)
    fields = [
        PartitionField(
            source_id=schema.find_field(name).field_id, field_id=1000 + i, transform=IdentityTransform(), name=name
        )
        for i, name in enumerate(PARTITION_COLUMNS)
    ]
    return PartitionSpec(*fields)


def open_table(catalog: Catalog, namespace: str, resource_type: str) -> Table:
    """The resource type's table, created (with its namespace) when missing, evolved to the current schema.
    Safe when several workers open the same table at once (creation races end in loading the winner's table)."""
    catalog.create_namespace_if_not_exists(namespace)
    table = catalog.create_table_if_not_exists(
        table_identifier(namespace, resource_type),
        schema=iceberg_schema(resource_type),
        partition_spec=partition_spec(resource_type),
        properties={"format-version": "2", **MANAGED_PROPERTIES, SCHEMA_VERSION_PROPERTY: str(SCHEMA_VERSION)},
    )
    return evolve_table(table, resource_type)


def evolve_table(table: Table, resource_type: str) -> Table:
    """Add the columns of the current schema a table lacks (Iceberg schema evolution: ``union_by_name``; old rows
    read them as null), set MANAGED_PROPERTIES and record SCHEMA_VERSION, in one commit; nothing is committed when
    the table is current (or newer: a table evolved by a later release is left alone). Retried like a day's commit
    when another worker changes the table meanwhile."""
    target = iceberg_schema(resource_type)
    for attempt in range(1, DEFAULT_ATTEMPTS + 1):
        table.refresh()
        current = table.metadata.properties.get(SCHEMA_VERSION_PROPERTY)
        missing = [f.name for f in target.fields if f.name not in table.schema().column_names]
        if not missing and current is not None and int(current) >= SCHEMA_VERSION:
            return table
        try:
            with table.transaction() as tx:
                if missing:
                    with tx.update_schema() as update:
                        update.union_by_name(target)
                tx.set_properties({**MANAGED_PROPERTIES, SCHEMA_VERSION_PROPERTY: str(SCHEMA_VERSION)})
            return table
        except CommitFailedException:
            if attempt == DEFAULT_ATTEMPTS:
                raise
            backoff(attempt)
    return table


def partition_filter(account_sid: str, day: date) -> BooleanExpression:
    """The rows of one (account, day) partition."""
    # mypy reads pydantic's field-based signature, not EqualTo's own __init__(term, literal)
    account: BooleanExpression = EqualTo("account_sid", account_sid)  # type: ignore[call-arg,arg-type]
    on_day: BooleanExpression = EqualTo("day", day.isoformat())  # type: ignore[call-arg,arg-type]
    return And(account, on_day)


def commit_day(
    table: Table,
    batches: Iterable[pa.RecordBatch],
    *,
    account_sid: str,
    day: date,
    expected_records: int,
    resource_type: str,
    snapshot_properties: dict[str, str] | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    file_rows: int = DEFAULT_FILE_ROWS,
) -> CommitResult:
    """Replace the (account_sid, day) partition of ``table`` by ``batches`` (``convert.iter_batches``) in one
    atomic commit; see the module's docstring. Raises ``RecordCountMismatch`` (nothing committed, files deleted)
    when the rows are not ``expected_records``, ``LakeCommitError`` when ``attempts`` commits all lost the race
    (files deleted), ``ValueError`` for a batch of another partition or schema."""
    files, rows = _write_files(table, batches, resource_type, account_sid, day, file_rows)
    if rows != expected_records:
        _delete(table, files)
        raise RecordCountMismatch(
            f"{'.'.join(table.name())} {account_sid} {day}: the day file converted to "
            f"{rows} rows, the copy verified {expected_records} records; nothing committed"
        )
    props = {"relay.account-sid": account_sid, "relay.day": day.isoformat(), "relay.records": str(rows)}
    props.update(snapshot_properties or {})
    for attempt in range(1, attempts + 1):
        try:
            snapshot_id = _replace_partition(table, files, partition_filter(account_sid, day), props)
        except CommitFailedException as exc:
            if attempt == attempts:
                _delete(table, files)
                raise LakeCommitError(f"{account_sid} {day}: {attempts} commits lost the race ({exc})") from exc
            backoff(attempt)
            table.refresh()
            continue
        return CommitResult(rows, tuple(files), snapshot_id, attempt, table)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _replace_partition(table: Table, files: list[str], where: BooleanExpression, props: dict[str, str]) -> int | None:
    """One transaction: delete the partition, add the files; returns the new current snapshot's id."""
    tx = table.transaction()
    with warnings.catch_warnings():  # a first load of the day deletes nothing: expected, not worth a warning
        warnings.filterwarnings("ignore", message="Delete operation did not match any records")
        tx.delete(where, snapshot_properties=props)
    if files:
        tx.add_files(files, snapshot_properties=props, check_duplicate_files=False)
    committed = tx.commit_transaction()
    snapshot = committed.current_snapshot()
    return snapshot.snapshot_id if snapshot else None


def _write_files(
    table: Table, batches: Iterable[pa.RecordBatch], resource_type: str, account_sid: str, day: date, file_rows: int
) -> tuple[list[str], int]:
    """Parquet files of the batches under the partition's data directory; (paths, rows). Files already written
    are deleted when a batch is refused or a write fails."""
    schema = arrow_schema(resource_type)
    directory = f"{table.location().rstrip('/')}/data/account_sid={account_sid}/day={day.isoformat()}"
    files: list[str] = []
    rows = 0
    writer: pq.ParquetWriter | None = None
    in_file = 0
    try:
        for batch in _checked(batches, schema, account_sid, day):
            if writer is not None and in_file >= file_rows:
                writer.close()
                writer = None
            if writer is None:
                path = f"{directory}/{uuid.uuid4().hex}-{len(files):05d}.parquet"
                files.append(path)
                writer = pq.ParquetWriter(table.io.new_output(path).create(overwrite=True), schema, compression="zstd")
                in_file = 0
            writer.write_batch(batch)
            in_file += batch.num_rows
            rows += batch.num_rows
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            _close_quietly(writer)
        _delete(table, files)
        raise
    return files, rows


def _checked(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, account_sid: str, day: date
) -> Iterator[pa.RecordBatch]:
    """The non-empty batches, each refused unless it has the table's schema and only this partition's rows."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        if not batch.schema.equals(schema):
            raise ValueError(f"batch schema differs from the table's: {batch.schema} != {schema}")
        same_account = pc.all(pc.equal(batch.column("account_sid"), account_sid)).as_py()
        same_day = pc.all(pc.equal(batch.column("day"), pa.scalar(day, pa.date32()))).as_py()
        if not (same_account and same_day):
            raise ValueError(f"batch holds rows of another partition than {account_sid} {day}")
        yield batch


def _close_quietly(writer: pq.ParquetWriter) -> None:
    with contextlib.suppress(Exception):  # the original error is what the caller must see
        writer.close()


def _delete(table: Table, files: list[str]) -> None:
    """Best effort: a file left behind is an orphan the janitor removes (``app.lake.orphans``)."""
    for path in files:
        try:
            table.io.delete(path)
        except Exception:  # noqa: S112 - best effort, see above
            continue


def backoff(attempt: int) -> None:
    """Full jitter: a random wait up to base * 2^attempt (capped), so racing workers spread out."""
    time.sleep(random.uniform(0, min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)))
