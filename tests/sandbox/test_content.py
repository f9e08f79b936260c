"""Unit tests of the deterministic day files (no server process)."""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import RESOURCE_TYPES
from sandbox.content import (
    MEMBER_SIZE,
    POOL_MEMBERS,
    day_file_size,
    describe_day_file,
    iter_day_file,
    min_day_file_size,
)

DAY = "2026-11-01"


def gunzip_members(data: bytes) -> tuple[bytes, int]:
    """Decompress a multi-member gzip the way a streaming consumer does: zlib wbits=31 + unused_data."""
    out = []
    members = 0
    while data:
        d = zlib.decompressobj(wbits=31)
        out.append(d.decompress(data))
        out.append(d.flush())
        assert d.eof, "truncated gzip member"
        members += 1
        data = d.unused_data
    return b"".join(out), members


@pytest.mark.parametrize("resource_type", RESOURCE_TYPES)
def test_small_file_is_exact_size_valid_gzip_and_matches_description(resource_type: str) -> None:
    data = b"".join(iter_day_file(resource_type, DAY, 4096))
    info = describe_day_file(resource_type, DAY, 4096)
    assert len(data) == 4096 == info.size
    assert hashlib.sha256(data).hexdigest() == info.sha256
    lines = gzip.decompress(data).splitlines()
    assert len(lines) == info.records > 0
    records = [json.loads(line) for line in lines]
    assert all(r["account_sid"].startswith("AC") for r in records)
    assert all(r["date_created"].startswith(DAY) for r in records)


def test_record_shapes_look_like_the_twilio_resources() -> None:
    first = {
        rt: json.loads(gzip.decompress(b"".join(iter_day_file(rt, DAY, 2048))).splitlines()[0]) for rt in RESOURCE_TYPES
    }
    assert first["Messages"]["sid"].startswith("SM") and {"from", "to", "body", "status"} <= set(first["Messages"])
    assert first["Calls"]["sid"].startswith("CA") and {"duration", "start_time", "end_time"} <= set(first["Calls"])
    assert first["Conferences"]["sid"].startswith("CF")
    assert first["Participants"]["conference_sid"].startswith("CF")
    # fields the docs say BulkExport files leave out
    assert not {"uri", "subresource_uris", "price_units", "api_version", "error_message"} & set(first["Messages"])
    assert not {"uri", "label"} & set(first["Participants"])


def test_content_is_a_pure_function_of_type_day_size_seed() -> None:
    a = describe_day_file("Calls", DAY, 10_000, seed=0)
    assert describe_day_file.__wrapped__("Calls", DAY, 10_000, seed=0) == a  # recomputed, not cached
    assert describe_day_file("Calls", DAY, 10_000, seed=1).sha256 != a.sha256
    assert describe_day_file("Calls", "2026-11-02", 10_000).sha256 != a.sha256
    assert describe_day_file("Messages", DAY, 10_000).sha256 != a.sha256


def test_empty_file_is_a_valid_gzip_with_no_payload() -> None:
    data = b"".join(iter_day_file("Messages", DAY, 0))
    assert gzip.decompress(data) == b""
    info = describe_day_file("Messages", DAY, 0)
    assert info.records == 0 and info.size == len(data) == day_file_size("Messages", DAY, 0)


def test_targets_below_one_record_give_a_one_record_file() -> None:
    smallest = min_day_file_size("Calls", DAY)
    info = describe_day_file("Calls", DAY, 10)
    assert info.size == smallest == day_file_size("Calls", DAY, 10)
    assert info.records == 1


def test_big_file_reuses_members_and_reads_as_multi_member_gzip() -> None:
    target = 5 * MEMBER_SIZE + 12_345
    data = b"".join(iter_day_file("Messages", DAY, target))
    info = describe_day_file("Messages", DAY, target)
    assert len(data) == info.size == target == day_file_size("Messages", DAY, target)
    assert hashlib.sha256(data).hexdigest() == info.sha256
    raw, members = gunzip_members(data)
    assert members == 5  # 4 full cycle members + 1 tail
    assert raw.count(b"\n") == info.records
    assert gzip.decompress(data) == raw


def test_fifty_mib_target_is_described_and_streamed_from_a_few_members() -> None:
    target = 50 * 1024 * 1024
    info = describe_day_file("Calls", "2026-10-01", target)
    assert info.size == target
    chunks = iter_day_file("Calls", "2026-10-01", target)
    distinct: dict[int, int] = {}
    total = 0
    for chunk in chunks:
        distinct[id(chunk)] = len(chunk)
        total += len(chunk)
    assert total == target
    assert len(distinct) <= POOL_MEMBERS + 1  # the same member objects are yielded again and again
    assert max(distinct.values()) <= 2 * MEMBER_SIZE


@settings(max_examples=25, deadline=None, database=None)
@given(size=st.integers(min_value=400, max_value=40_000), seed=st.integers(min_value=0, max_value=3))
def test_any_target_above_the_minimum_is_hit_exactly(size: int, seed: int) -> None:
    data = b"".join(iter_day_file("Conferences", DAY, size, seed))
    assert len(data) == size
    raw, _ = gunzip_members(data)
    assert raw.count(b"\n") == describe_day_file("Conferences", DAY, size, seed).records


def test_unknown_resource_type_is_rejected() -> None:
    with pytest.raises(ValueError):
        describe_day_file("Faxes", DAY, 100)
