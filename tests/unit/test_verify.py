"""VerifyingReader: what it accepts, what it refuses, and that chunking never changes the answer."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.bucket import gzip_check
from workers.copy import VerifyingReader
from workers.copy_errors import CopyIntegrityError, RetryableCopyError

MiB = 1024 * 1024


@pytest.fixture(scope="module", autouse=True, params=["zlib", "isal"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test with the stdlib inflater and with ISA-L's (when the optional package is there)."""
    module = zlib if request.param == "zlib" else pytest.importorskip("isal.isal_zlib")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gzip_check, "INFLATE", module)
        yield request.param


def gz(text: bytes) -> bytes:
    return gzip.compress(text, mtime=0)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def drain(reader: VerifyingReader, n: int = 8 * MiB) -> bytes:
    """Read the way s3transfer does for a non-seekable stream: fixed-size reads until b''."""
    out = bytearray()
    while piece := reader.read(n):
        out += piece
    return bytes(out)


def copy_of(data: bytes, expected: int | None = None, chunk: int = 7) -> tuple[bytes, VerifyingReader]:
    reader = VerifyingReader(chunks(data, chunk), len(data) if expected is None else expected)
    return drain(reader, 1000), reader


LINES = b'{"sid": "SM1", "body": "hi"}\n{"sid": "SM2", "body": "ho"}\n{"sid": "SM3"}\n'


def test_single_member_is_passed_through_with_digest() -> None:
    data = gz(LINES)
    out, reader = copy_of(data)
    assert out == data
    digest = reader.digest()
    assert (digest.size, digest.sha256, digest.records) == (len(data), hashlib.sha256(data).hexdigest(), 3)


def test_multi_member_gzip_counts_records_across_members() -> None:
    data = gz(LINES) + gz(b'{"sid": "SM4"}\n') + gz(b"")
    out, reader = copy_of(data)
    assert out == data
    assert reader.digest().records == 4


def test_line_split_across_members_counts_once() -> None:
    data = gz(b'{"a": 1}\n{"b"') + gz(b": 2}\n")
    assert copy_of(data)[1].digest().records == 2


def test_empty_gzip_has_zero_records() -> None:
    data = gz(b"")
    out, reader = copy_of(data)
    assert out == data and reader.digest().records == 0


def test_zero_byte_body_is_accepted_only_when_size_zero() -> None:
    out, reader = copy_of(b"", expected=0)
    assert out == b"" and reader.digest().records == 0
    with pytest.raises(CopyIntegrityError, match="short"):
        copy_of(b"", expected=20)


def test_last_line_without_newline_counts() -> None:
    assert copy_of(gz(b'{"a": 1}\n{"b": 2}'))[1].digest().records == 2
    assert copy_of(gz(b'{"a": 1}'))[1].digest().records == 1
    assert copy_of(gz(b"\n\n"))[1].digest().records == 2  # blank lines are lines: count, don't judge


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 30])
def test_truncated_stream_is_refused(cut: int) -> None:
    data = gz(LINES)[:-cut]
    with pytest.raises(CopyIntegrityError, match="truncated"):
        copy_of(data)


def test_truncated_second_member_is_refused() -> None:
    data = gz(LINES) + gz(LINES)[:12]
    with pytest.raises(CopyIntegrityError, match="member 2"):
        copy_of(data)


def test_corrupt_crc_is_refused() -> None:
    data = bytearray(gz(LINES))
    data[-8] ^= 0xFF  # first byte of the CRC-32 trailer
    with pytest.raises(CopyIntegrityError, match="corrupt"):
        copy_of(bytes(data))


def test_wrong_isize_is_refused() -> None:
    data = bytearray(gz(LINES))
    data[-1] ^= 0x01  # ISIZE trailer
    with pytest.raises(CopyIntegrityError, match="corrupt"):
        copy_of(bytes(data))


def test_corrupt_deflate_data_is_refused() -> None:
    data = bytearray(gz(LINES * 50))
    data[len(data) // 2] ^= 0x55
    with pytest.raises(CopyIntegrityError):
        copy_of(bytes(data))


def test_body_shorter_than_expected_is_refused() -> None:
    data = gz(LINES)
    with pytest.raises(CopyIntegrityError, match=f"got {len(data)} of the expected {len(data) + 5}"):
        copy_of(data, expected=len(data) + 5)


def test_body_longer_than_expected_is_refused_as_soon_as_it_overflows() -> None:
    data = gz(LINES)
    pulled: list[int] = []

    def source() -> Iterator[bytes]:
        for piece in chunks(data + b"x" * 1000, 10):
            pulled.append(len(piece))
            yield piece

    reader = VerifyingReader(source(), len(data))
    with pytest.raises(CopyIntegrityError, match="longer"):
        drain(reader, 1)
    assert sum(pulled) <= len(data) + 10  # stopped at the first chunk past the size


@pytest.mark.parametrize("garbage", [b"\x00", b"garbage!", b"\x1f\x8b\x08\x00trash-trash", b"\x1f"])
def test_trailing_garbage_is_refused(garbage: bytes) -> None:
    data = gz(LINES) + garbage
    with pytest.raises(CopyIntegrityError, match="garbage"):
        copy_of(data)


def test_not_gzip_at_all_is_refused() -> None:
    with pytest.raises(CopyIntegrityError, match="corrupt"):
        copy_of(LINES)


def test_last_bytes_are_only_returned_after_verification() -> None:
    """s3transfer uploads what read() returns: the final piece must never come back unverified."""
    data = bytearray(gz(LINES))
    data[-8] ^= 0xFF
    reader = VerifyingReader(chunks(bytes(data), len(data)), len(data))
    with pytest.raises(CopyIntegrityError):
        reader.read(len(data))  # exactly the size: the reader must look for the end before answering


def test_reads_are_full_until_the_end() -> None:
    data = gz(bytes(range(256)) * 4000)
    reader = VerifyingReader(chunks(data, 333), len(data))
    sizes = []
    while piece := reader.read(4096):
        sizes.append(len(piece))
    assert all(s == 4096 for s in sizes[:-1]) and sum(sizes) == len(data)


def test_read_all_and_read_none() -> None:
    data = gz(LINES)
    reader = VerifyingReader(chunks(data, 5), len(data))
    assert reader.read(3) + reader.read() == data
    assert reader.read(None) == b"" and reader.read() == b""


def test_digest_before_the_end_is_refused() -> None:
    data = gz(LINES)
    reader = VerifyingReader(chunks(data, 5), len(data))
    reader.read(3)
    with pytest.raises(CopyIntegrityError, match="not verified"):
        reader.digest()


def test_a_failed_reader_stays_failed() -> None:
    data = gz(LINES)
    reader = VerifyingReader(chunks(data, 5), len(data) + 1)
    with pytest.raises(CopyIntegrityError):
        drain(reader)
    with pytest.raises(CopyIntegrityError):
        reader.read(1)


def test_source_errors_propagate_unchanged() -> None:
    class Cut(Exception):
        pass

    def source() -> Iterator[bytes]:
        yield gz(LINES)[:10]
        raise Cut("connection reset")

    reader = VerifyingReader(source(), 100)
    with pytest.raises(Cut):
        drain(reader)
    with pytest.raises(Cut):
        reader.read(1)


def test_integrity_errors_are_retryable() -> None:
    assert issubclass(CopyIntegrityError, RetryableCopyError)


def test_negative_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        VerifyingReader([], -1)


def test_highly_compressible_data_inflates_in_bounded_memory() -> None:
    """64 MiB of newlines gzip to ~64 KiB; inflating must not materialise them at once."""
    data = gz(b"\n" * (64 * MiB))
    tracemalloc.start()
    try:
        _, reader = copy_of(data, chunk=64 * 1024)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reader.digest().records == 64 * MiB
    assert peak < 8 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


# -- chunking never matters --------------------------------------------------------------------------

record = st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" "))


@st.composite
def day_file(draw: st.DrawFn) -> tuple[bytes, int]:
    """A (possibly multi-member, possibly empty) gzip JSON-lines file and its record count."""
    members = draw(st.lists(st.lists(record, max_size=20), min_size=1, max_size=4))
    trailing_newline = draw(st.booleans())
    texts = [b"\n".join(m) + b"\n" if m else b"" for m in members]
    if texts[-1] and not trailing_newline:
        texts[-1] = texts[-1][:-1]
    text = b"".join(texts)
    expected = text.count(b"\n") + (1 if text and not text.endswith(b"\n") else 0)
    return b"".join(gz(t) for t in texts), expected


@given(
    day=day_file(),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
    read_size=st.integers(min_value=1, max_value=4096),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_chunking_gives_the_same_digest(day: tuple[bytes, int], cuts: list[int], read_size: int) -> None:
    data, records = day
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    pieces = [data[a:b] for a, b in itertools.pairwise(bounds)] + [b""]  # empty chunks too
    reader = VerifyingReader(iter(pieces), len(data))
    assert drain(reader, read_size) == data
    digest = reader.digest()
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.records == records
    assert digest.size == len(data)
