"""The lake's schemas and conversions (app/lake/schemas.py, app/lake/convert.py): Twilio's values become typed ones,
a value that does not parse is kept raw in ``_extra``, a day file streams in bounded batches."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from app.lake.convert import BadDayFile, ConvertStats, DaySource, iter_batches
from app.lake.schemas import (
    LAKE_COLUMNS,
    RESOURCE_TYPES,
    SCHEMA_VERSION,
    InvalidValue,
    arrow_schema,
    columns,
    iceberg_schema,
    parse_bool,
    parse_int,
    parse_long,
    parse_price,
    parse_string,
    parse_timestamp,
)
from sandbox.content import describe_day_file, iter_day_file

ACCOUNT = "AC" + "a" * 32
DAY = date(2026, 6, 1)
LOADED = datetime(2026, 6, 3, 4, 5, 6, tzinfo=UTC)


def source(resource_type: str = "Messages") -> DaySource:
    return DaySource(resource_type, ACCOUNT, DAY, "twilio/Messages/2026-06-01.json.gz", "ab" * 32, LOADED)


def gz(*records: object, members: int = 1) -> io.BytesIO:
    """The records as gzip JSON lines, split over ``members`` gzip members (a multi-member file)."""
    lines = [json.dumps(r).encode() + b"\n" for r in records]
    step = max(1, -(-len(lines) // members))
    return io.BytesIO(b"".join(gzip.compress(b"".join(lines[i : i + step])) for i in range(0, len(lines), step)))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", 1), (" 42 ", 42), (7, 7), (3.0, 3), ("-5", -5)],
)
def test_integers_parse_from_numbers_and_strings(raw: object, expected: int) -> None:
    assert parse_int(raw) == expected
    assert parse_long(raw) == expected


@pytest.mark.parametrize("raw", ["1.5", "", "one", True, 2.5, [1], 2**31])
def test_a_32_bit_integer_refuses_what_is_not_one(raw: object) -> None:
    with pytest.raises(InvalidValue):
        parse_int(raw)


def test_a_long_holds_what_an_int_cannot() -> None:
    assert parse_long(str(2**40)) == 2**40


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("-0.00798", Decimal("-0.00798")), ("-0.0130", Decimal("-0.013")), (0, Decimal(0)), ("12.5", Decimal("12.5"))],
)
def test_prices_are_exact_decimals(raw: object, expected: Decimal) -> None:
    parsed = parse_price(raw)
    assert parsed == expected
    assert parsed.as_tuple().exponent == -8  # scale 8: what the decimal(18, 8) column stores


@pytest.mark.parametrize("raw", ["0.123456789", "1e12", "NaN", "free", True, {"v": 1}])
def test_a_price_is_never_rounded_or_invented(raw: object) -> None:
    with pytest.raises(InvalidValue):
        parse_price(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "2026-06-01T08:50:05Z",
        "2026-06-01T08:50:05+00:00",
        "2026-06-01T10:50:05+02:00",
        "2026-06-01T08:50:05",
        "2026-06-01 08:50:05",
        "Mon, 01 Jun 2026 08:50:05 +0000",
    ],
)
def test_timestamps_are_utc_whatever_twilio_spells(raw: str) -> None:
    assert parse_timestamp(raw) == datetime(2026, 6, 1, 8, 50, 5, tzinfo=UTC)


def test_fractional_seconds_are_kept() -> None:
    assert parse_timestamp("2021-03-15T20:20:14.547Z").microsecond == 547_000


@pytest.mark.parametrize("raw", ["", "yesterday", 1717228205, None])
def test_a_timestamp_refuses_what_is_not_one(raw: object) -> None:
    with pytest.raises(InvalidValue):
        parse_timestamp(raw)


@pytest.mark.parametrize(("raw", "expected"), [(True, True), (False, False), ("true", True), ("False", False)])
def test_booleans(raw: object, expected: bool) -> None:
    assert parse_bool(raw) is expected


@pytest.mark.parametrize("raw", ["yes", 1, 0, ""])
def test_a_boolean_refuses_what_is_not_one(raw: object) -> None:
    with pytest.raises(InvalidValue):
        parse_bool(raw)


def test_strings_take_scalars_but_not_objects() -> None:
    assert parse_string("x") == "x"
    assert parse_string(5) == "5"
    with pytest.raises(InvalidValue):
        parse_string({"a": 1})


@pytest.mark.parametrize("resource_type", RESOURCE_TYPES)
def test_every_table_has_documented_typed_columns_and_the_lake_columns(resource_type: str) -> None:
    schema = iceberg_schema(resource_type)
    names = schema.column_names
    assert names[-len(LAKE_COLUMNS) :] == [c.name for c in LAKE_COLUMNS]
    assert len(set(names)) == len(names)
    assert all(field.doc for field in schema.fields)
    assert [f.name for f in arrow_schema(resource_type)] == names
    assert all(c.since <= SCHEMA_VERSION for c in columns(resource_type))
    date_columns = [f for f in schema.fields if f.name.startswith("date_")]
    assert date_columns and all(str(f.field_type) == "timestamptz" for f in date_columns)


def test_an_unknown_resource_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown resource type"):
        columns("Faxes")


def test_a_record_becomes_a_typed_row() -> None:
    record = {
        "sid": "SM1",
        "account_sid": ACCOUNT,
        "from": "+15550001111",
        "num_segments": "2",
        "num_media": "0",
        "price": "-0.00798",
        "error_code": 30003,
        "date_created": "2026-06-01T08:50:05Z",
        "date_sent": None,
    }
    (batch,) = list(iter_batches(gz(record), source()))
    assert batch.schema == arrow_schema("Messages")
    row = batch.to_pylist()[0]
    assert row["num_segments"] == 2 and row["num_media"] == 0 and row["error_code"] == 30003
    assert row["price"] == Decimal("-0.00798")
    assert row["date_created"] == datetime(2026, 6, 1, 8, 50, 5, tzinfo=UTC)
    assert row["date_sent"] is None and row["body"] is None
    assert (row["account_sid"], row["day"], row["_loaded_at"]) == (ACCOUNT, DAY, LOADED)
    assert row["_source_key"] == source().source_key and row["_source_sha256"] == "ab" * 32
    assert row["_extra"] is None


def test_unknown_fields_and_unparsable_values_go_to_extra() -> None:
    record = {"sid": "SM1", "num_segments": "many", "flags": ["x"], "start": 1, "account_sid": "AC" + "b" * 32}
    stats = ConvertStats()
    (batch,) = list(iter_batches(gz(record), source(), stats))
    row = batch.to_pylist()[0]
    assert row["num_segments"] is None
    assert json.loads(row["_extra"]) == {
        "num_segments": "many",
        "flags": ["x"],
        "start": 1,
        "account_sid": "AC" + "b" * 32,
    }
    assert row["account_sid"] == ACCOUNT  # the partition is the day's account, whatever a record says
    assert stats.invalid == {"num_segments": 1}
    assert stats.unknown == {"flags": 1, "start": 1, "account_sid": 1}


def test_batches_are_bounded_and_every_member_is_read() -> None:
    records = [{"sid": f"CA{i}", "duration": str(i)} for i in range(25)]
    stats = ConvertStats()
    batches = list(iter_batches(gz(*records, members=4), source("Calls"), stats, batch_rows=10))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    assert stats.rows == 25
    table = pa.Table.from_batches(batches)
    assert table.column("duration").to_pylist() == list(range(25))


def test_a_sandbox_day_file_converts_to_as_many_rows_as_it_has_records() -> None:
    for resource_type in RESOURCE_TYPES:
        data = b"".join(iter_day_file(resource_type, DAY, 600_000, account_sid=ACCOUNT))
        info = describe_day_file(resource_type, DAY, 600_000, account_sid=ACCOUNT)
        stats = ConvertStats()
        rows = sum(b.num_rows for b in iter_batches(io.BytesIO(data), source(resource_type), stats, batch_rows=700))
        assert rows == stats.rows == info.records
        assert stats.invalid == {} and stats.unknown == {}, resource_type


def test_blank_lines_are_not_rows() -> None:
    data = io.BytesIO(gzip.compress(b'{"sid": "SM1"}\n\n   \n{"sid": "SM2"}'))
    assert sum(b.num_rows for b in iter_batches(data, source())) == 2


@pytest.mark.parametrize("line", [b"not json", b"[1, 2]", b'"text"'])
def test_a_line_that_is_not_a_json_object_fails_the_day(line: bytes) -> None:
    data = io.BytesIO(gzip.compress(b'{"sid": "SM1"}\n' + line + b"\n"))
    with pytest.raises(BadDayFile, match="line 2"):
        list(iter_batches(data, source()))


def test_an_empty_day_file_has_no_batches() -> None:
    stats = ConvertStats()
    assert list(iter_batches(io.BytesIO(gzip.compress(b"")), source(), stats)) == []
    assert stats.rows == 0
