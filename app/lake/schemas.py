"""Typed, versioned schemas of the lake's tables, one per Twilio resource type, and the value parsers behind them.

Why one module: a column's Iceberg type, its Arrow type, its doc and the parser that turns Twilio's JSON value into
it must change together. Twilio writes many numbers as strings (``"num_segments": "1"``, ``"price": "-0.00798"``)
and timestamps as ISO-8601 in UTC (the BulkExports overview; the REST API's RFC 2822 form, ``"Wed, 18 Aug 2010
20:20:06 +0000"``, is accepted too, in case a day file follows the REST resource), so every typed column has a
parser that accepts both a JSON number and its string form.

Prices are ``decimal(18, 8)``: Twilio quotes prices with up to 5 or 6 decimals (``-0.00798``, ``-0.0130``), 8
keeps every one exact with room to spare, 10 integer digits hold any single record's price, and a precision <= 18
is stored in Parquet as a 64-bit integer (compact, and read by DuckDB, Athena and Trino as an exact decimal). A
price that would need rounding is not rounded: it counts as a value that failed to parse (see ``convert``).

Every table ends with the lake's own columns: ``account_sid`` and ``day`` (the partition, identity on both),
``_source_key``, ``_source_sha256``, ``_loaded_at`` and ``_extra``. Adding a column later: append a ``Column`` with
``since=SCHEMA_VERSION + 1``, bump ``SCHEMA_VERSION``; ``tables.evolve_table`` adds it to existing tables through
Iceberg schema evolution (old rows read it as null). Never change a column's type or reuse a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

SCHEMA_VERSION = 1
"""The version of the columns below; tables carry it in their ``SCHEMA_VERSION_PROPERTY``."""

SCHEMA_VERSION_PROPERTY = "relay.lake.schema-version"

PRICE_PRECISION = 18
PRICE_SCALE = 8

RESOURCE_TYPES = ("Messages", "Calls", "Conferences", "Participants")
TABLE_NAMES = {"Messages": "messages", "Calls": "calls", "Conferences": "conferences", "Participants": "participants"}

PARTITION_COLUMNS = ("account_sid", "day")
EXTRA_COLUMN = "_extra"


class InvalidValue(ValueError):
    """A Twilio value that does not parse for its column's type."""


def parse_string(value: Any) -> str:
    """Strings as written; a JSON number or boolean as its text (a column Twilio once wrote as a string)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise InvalidValue(f"not a string: {value!r}")


_INTEGER = re.compile(r"[+-]?\d+")


def _parse_integer(value: Any, bits: int) -> int:
    if isinstance(value, bool):
        raise InvalidValue(f"not an integer: {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise InvalidValue(f"not an integer: {value!r}")
    if not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        raise InvalidValue(f"out of range for {bits} bits: {value!r}")
    return number


def parse_int(value: Any) -> int:
    """A 32-bit integer from a JSON number or its string form (``"1"``)."""
    return _parse_integer(value, 32)


def parse_long(value: Any) -> int:
    """A 64-bit integer from a JSON number or its string form (``"415"``)."""
    return _parse_integer(value, 64)


_PRICE_MAX = Decimal(10) ** (PRICE_PRECISION - PRICE_SCALE)
_PRICE_STEP = Decimal(1).scaleb(-PRICE_SCALE)


def parse_price(value: Any) -> Decimal:
    """An exact ``decimal(18, 8)`` from ``"-0.00798"`` (or a JSON number); never rounded."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidValue(f"not a decimal: {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise InvalidValue(f"not a decimal: {value!r}") from exc
    if not number.is_finite() or abs(number) >= _PRICE_MAX:
        raise InvalidValue(f"out of range for decimal({PRICE_PRECISION}, {PRICE_SCALE}): {value!r}")
    exact = number.quantize(_PRICE_STEP)
    if exact != number:
        raise InvalidValue(f"more than {PRICE_SCALE} decimals: {value!r}")
    return exact


def parse_timestamp(value: Any) -> datetime:
    """A UTC datetime from ISO-8601 (``2026-06-10T01:02:03Z``, offsets converted, no offset means UTC) or RFC 2822
    (``Wed, 18 Aug 2010 20:20:06 +0000``)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"not a timestamp: {value!r}")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"not a timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_bool(value: Any) -> bool:
    """A boolean from JSON ``true``/``false`` or the strings ``"true"``/``"false"`` (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidValue(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Kind:
    """A column type: its Iceberg and Arrow types and the parser of Twilio's value."""

    iceberg: IcebergType
    arrow: pa.DataType
    parse: Callable[[Any], Any]


STRING = Kind(StringType(), pa.string(), parse_string)
INT = Kind(IntegerType(), pa.int32(), parse_int)
LONG = Kind(LongType(), pa.int64(), parse_long)
PRICE = Kind(DecimalType(PRICE_PRECISION, PRICE_SCALE), pa.decimal128(PRICE_PRECISION, PRICE_SCALE), parse_price)
TIMESTAMP = Kind(TimestamptzType(), pa.timestamp("us", tz="UTC"), parse_timestamp)
BOOL = Kind(BooleanType(), pa.bool_(), parse_bool)
DATE = Kind(DateType(), pa.date32(), date.fromisoformat)


@dataclass(frozen=True)
class Column:
    """One column: ``since`` is the SCHEMA_VERSION that added it; ``required`` only for the lake's own columns."""

    name: str
    kind: Kind
    doc: str
    since: int = 1
    required: bool = False


def _c(name: str, kind: Kind, doc: str) -> Column:
    return Column(name, kind, doc)


_SID = "Twilio's 34-character identifier of this record"
_MESSAGES = (
    _c("sid", STRING, f"{_SID} (SM…/MM…)"),
    _c("messaging_service_sid", STRING, "Messaging Service that sent it (MG…), null if none"),
    _c("from", STRING, "Sender: E.164 number, short code or channel address"),
    _c("to", STRING, "Recipient: E.164 number or channel address"),
    _c("body", STRING, "Message text"),
    _c("status", STRING, "Final status: queued, sent, delivered, undelivered, failed, received, …"),
    _c("direction", STRING, "inbound, outbound-api, outbound-call or outbound-reply"),
    _c("num_segments", INT, "SMS segments billed (Twilio writes it as a string)"),
    _c("num_media", INT, "Media items attached (Twilio writes it as a string)"),
    _c("price", PRICE, "Price in the account's currency, negative for a charge; null until priced"),
    _c("error_code", INT, "Twilio error code of a failed or undelivered message, else null"),
    _c("date_created", TIMESTAMP, "When Twilio created the message (UTC)"),
    _c("date_sent", TIMESTAMP, "When Twilio sent or received it (UTC)"),
    _c("date_updated", TIMESTAMP, "Last update of the record (UTC)"),
)
_CALLS = (
    _c("sid", STRING, f"{_SID} (CA…)"),
    _c("parent_call_sid", STRING, "Call that created this leg (CA…), null for a parent call"),
    _c("from", STRING, "Caller: number, SIP address or client identifier"),
    _c("to", STRING, "Called party: number, SIP address or client identifier"),
    _c("phone_number_sid", STRING, "Incoming phone number of an inbound call (PN…)"),
    _c("status", STRING, "Final status: completed, busy, no-answer, failed, canceled, …"),
    _c("direction", STRING, "inbound, outbound-api or outbound-dial"),
    _c("duration", LONG, "Seconds the call lasted (Twilio writes it as a string)"),
    _c("start_time", TIMESTAMP, "When the call started (UTC)"),
    _c("end_time", TIMESTAMP, "When the call ended (UTC)"),
    _c("price", PRICE, "Price in price_unit, negative for a charge; null until priced"),
    _c("price_unit", STRING, "ISO 4217 currency of price"),
    _c("answered_by", STRING, "human or machine when answering machine detection ran"),
    _c("caller_name", STRING, "Caller ID name when CNAM lookup ran"),
    _c("forwarded_from", STRING, "Number that forwarded an inbound call, when the carrier says"),
    _c("queue_time", LONG, "Milliseconds the call waited in Twilio's queue before starting"),
    _c("trunk_sid", STRING, "SIP trunk of the call (TK…)"),
    _c("group_sid", STRING, "Group the call belongs to (GP…)"),
    _c("api_version", STRING, "Twilio API version that created the call"),
    _c("date_created", TIMESTAMP, "When Twilio created the call record (UTC)"),
    _c("date_updated", TIMESTAMP, "Last update of the record (UTC)"),
)
_CONFERENCES = (
    _c("sid", STRING, f"{_SID} (CF…)"),
    _c("friendly_name", STRING, "Name the application gave the conference"),
    _c("status", STRING, "init, in-progress or completed"),
    _c("region", STRING, "Twilio region that mixed the conference (us1, ie1, …)"),
    _c("reason_conference_ended", STRING, "Why it ended: last-participant-left, conference-ended-via-api, …"),
    _c("call_sid_ending_conference", STRING, "Call whose action ended the conference (CA…)"),
    _c("date_created", TIMESTAMP, "When the conference was created (UTC)"),
    _c("date_updated", TIMESTAMP, "Last update of the record (UTC)"),
)
_PARTICIPANTS = (
    _c("call_sid", STRING, "The participant's call (CA…)"),
    _c("conference_sid", STRING, "The conference joined (CF…)"),
    _c("call_sid_to_coach", STRING, "Call this participant coached (CA…), null if not coaching"),
    _c("coaching", BOOL, "Whether the participant was coaching another call"),
    _c("hold", BOOL, "Whether the participant was on hold"),
    _c("muted", BOOL, "Whether the participant was muted"),
    _c("start_conference_on_enter", BOOL, "Whether joining started the conference"),
    _c("end_conference_on_exit", BOOL, "Whether leaving ended the conference"),
    _c("status", STRING, "queued, connecting, ringing, connected, complete or failed"),
    _c("date_created", TIMESTAMP, "When the participant joined (UTC)"),
    _c("date_updated", TIMESTAMP, "Last update of the record (UTC)"),
)

LAKE_COLUMNS = (
    Column("account_sid", STRING, "Account whose export this day is (AC…); partition (identity)", required=True),
    Column("day", DATE, "UTC day of the export file; partition (identity)", required=True),
    Column("_source_key", STRING, "S3 key of the verified day file the row came from", required=True),
    Column("_source_sha256", STRING, "SHA-256 (hex) of that day file, as the relay verified it", required=True),
    Column("_loaded_at", TIMESTAMP, "When the relay loaded the day into the lake (UTC)", required=True),
    Column(
        EXTRA_COLUMN,
        STRING,
        "JSON object: every field the schema does not know, and the raw value of every "
        "field that did not parse for its column's type (that column is null); null when there is none",
    ),
)

COLUMNS: dict[str, tuple[Column, ...]] = {
    "Messages": _MESSAGES,
    "Calls": _CALLS,
    "Conferences": _CONFERENCES,
    "Participants": _PARTICIPANTS,
}
"""Twilio's fields per resource type, typed. ``account_sid`` is one of LAKE_COLUMNS (see ``convert``)."""


def columns(resource_type: str, version: int = SCHEMA_VERSION) -> tuple[Column, ...]:
    """Every column of the resource type's table at ``version``: Twilio's fields, then the lake's own."""
    if resource_type not in COLUMNS:
        raise ValueError(f"unknown resource type {resource_type!r}; expected one of {RESOURCE_TYPES}")
    return tuple(c for c in (*COLUMNS[resource_type], *LAKE_COLUMNS) if c.since <= version)


def iceberg_schema(resource_type: str, version: int = SCHEMA_VERSION) -> Schema:
    """The Iceberg schema (field ids 1…n in column order; a new table gets fresh ids from the catalog anyway)."""
    fields = [
        NestedField(field_id=i, name=c.name, field_type=c.kind.iceberg, required=c.required, doc=c.doc)
        for i, c in enumerate(columns(resource_type, version), start=1)
    ]
    return Schema(*fields)


def arrow_schema(resource_type: str, version: int = SCHEMA_VERSION) -> pa.Schema:
    """The Arrow schema of the batches ``convert`` yields and the Parquet files ``tables`` writes (no field ids:
    the table's name mapping resolves columns by name, which is what pyiceberg's ``add_files`` requires)."""
    return pa.schema([pa.field(c.name, c.kind.arrow, nullable=not c.required) for c in columns(resource_type, version)])
