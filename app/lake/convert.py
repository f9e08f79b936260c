"""A day file (gzip JSON lines, one Twilio record per line) streamed into typed Arrow record batches.

Memory: the file is decompressed as a stream (``gzip.GzipFile`` reads every member of a multi-member file) and
rows are buffered per column until ``batch_rows`` are collected, so at most one batch is held at a time, whatever
the size of the day.

A value that does not parse for its column's type (``"num_segments": "many"``) does not fail the day: the column
is null and the raw value goes into ``_extra`` under the field's own name, and ``ConvertStats.invalid`` counts it
per column. Why: a new Twilio spelling must not stop every later day from reaching the lake, nothing is lost (the
raw value is in ``_extra``, the day file stays in S3), and the counts tell the operator a parser needs widening. A
line that is not a JSON object, by contrast, means the file is not what Twilio writes: ``BadDayFile`` fails the day.

Rows: every non-blank line is one row; blank lines are skipped (the caller compares ``ConvertStats.rows`` with the
record count the copy verified, so a file with blank lines is refused there, not silently shortened).
A record's own ``account_sid`` fills nothing: the column holds the account whose export the day is (the
partition); a record that names another account keeps that value in ``_extra``.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO, Any

import pyarrow as pa

from app.lake.schemas import EXTRA_COLUMN, InvalidValue, arrow_schema, columns
from app.platform import clock

DEFAULT_BATCH_ROWS = 50_000


class BadDayFile(ValueError):
    """The day file holds a line that is not a JSON object: the day is refused."""


@dataclass(frozen=True)
class DaySource:
    """Where a day's rows come from: the values of the lake's own columns for every row of the day."""

    resource_type: str
    account_sid: str
    day: date
    source_key: str
    source_sha256: str
    loaded_at: datetime = field(default_factory=clock.utc_now)


@dataclass
class ConvertStats:
    """Counts of one conversion: rows yielded, values that failed to parse (per column), unknown fields (per name)."""

    rows: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)


class _Builder:
    """Column buffers of the rows of the batch being collected."""

    def __init__(self, source: DaySource, stats: ConvertStats) -> None:
        cols = columns(source.resource_type)
        self._schema = arrow_schema(source.resource_type)
        self._source = source
        self._stats = stats
        self._twilio = {c.name: c.kind.parse for c in cols if c.name not in _LAKE_FIELDS}
        self._names = [c.name for c in cols]
        self._buffers: dict[str, list[Any]] = {name: [] for name in self._names}
        self.rows = 0

    def add(self, record: dict[str, Any]) -> None:
        extra: dict[str, Any] = {}
        for name, parse in self._twilio.items():
            raw = record.get(name)
            value = None
            if raw is not None:
                try:
                    value = parse(raw)
                except InvalidValue:
                    extra[name] = raw
                    self._stats.invalid[name] += 1
            self._buffers[name].append(value)
        for name, raw in record.items():
            if name in self._twilio:
                continue
            if name == "account_sid" and raw == self._source.account_sid:
                continue
            extra[name] = raw
            self._stats.unknown[name] += 1
        self._buffers[EXTRA_COLUMN].append(json.dumps(extra, sort_keys=True, default=str) if extra else None)
        self.rows += 1

    def flush(self) -> pa.RecordBatch:
        source = self._source
        constants = {
            "account_sid": source.account_sid,
            "day": source.day,
            "_source_key": source.source_key,
            "_source_sha256": source.source_sha256,
            "_loaded_at": source.loaded_at,
        }
        arrays = []
        for f in self._schema:
            values = [constants[f.name]] * self.rows if f.name in constants else self._buffers[f.name]
            arrays.append(pa.array(values, type=f.type))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self._buffers = {name: [] for name in self._names}
        self._stats.rows += self.rows
        self.rows = 0
        return batch


_LAKE_FIELDS = frozenset({"account_sid", "day", "_source_key", "_source_sha256", "_loaded_at", EXTRA_COLUMN})


def iter_batches(
    fileobj: IO[bytes], source: DaySource, stats: ConvertStats | None = None, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Record batches of at most ``batch_rows`` rows (schema ``arrow_schema(source.resource_type)``) from the gzip
    JSON-lines stream ``fileobj``, read sequentially; ``stats`` (optional) is updated as batches are yielded."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    stats = stats if stats is not None else ConvertStats()
    builder = _Builder(source, stats)
    with gzip.GzipFile(fileobj=fileobj, mode="rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            builder.add(_record(line, number))
            if builder.rows >= batch_rows:
                yield builder.flush()
    if builder.rows:
        yield builder.flush()


def _record(line: bytes, number: int) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise BadDayFile(f"line {number}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise BadDayFile(f"line {number}: not a JSON object")
    return record
