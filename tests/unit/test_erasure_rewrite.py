"""The streaming rewriter and scan: what they drop, transform and pass through untouched, their counts and
digests, that GzipCheck accepts what they write, and the errors on input that is not an intact day file."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.bucket import gzip_check
from app.bucket.gzip_check import INFLATE_CHUNK, GzipCheck
from app.erasure import rewrite as rewrite_module
from app.erasure.rewrite import READ_CHUNK, RewriteError, RewriteResult, inflated_blocks, rewrite, scan
from app.erasure.rules import PSEUDONYM_PREFIX, Rules, pseudonym

MiB = 1024 * 1024
SALT = b"salt-from-a-mounted-secret-0123456789"
TARGET = "+12125550100"
REDACT = {"body": "drop", "to": "sha256", "from": "sha256"}


@pytest.fixture(scope="module", autouse=True, params=["zlib", "isal"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test with the stdlib inflater and deflater, and with ISA-L's (when the optional package is there)."""
    module = zlib if request.param == "zlib" else pytest.importorskip("isal.isal_zlib")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(gzip_check, "INFLATE", module)
        mp.setattr(rewrite_module, "DEFLATE", module)
        mp.setattr(rewrite_module, "DEFLATE_LEVEL", 3 if module is zlib else 2)
        yield request.param


def phone(rng: random.Random) -> str:
    return f"+1{rng.randrange(200, 999)}{rng.randrange(200, 999)}{rng.randrange(10000):04d}"


def fake_messages(n: int = 3000, seed: int = 7) -> list[dict[str, object]]:
    """Twilio-like Message records; every 97th is to TARGET, some bodies need JSON escapes."""
    rng = random.Random(seed)
    bodies = ("Your code is 1234", 'He said "hi"', "line one\nline two", "café ☕", "path C:\\tmp", "Order #55")
    out: list[dict[str, object]] = []
    for i in range(n):
        out.append(
            {
                "sid": f"SM{rng.getrandbits(128):032x}",
                "account_sid": "AC" + "1" * 32,
                "from": phone(rng),
                "to": TARGET if i % 97 == 0 else phone(rng),
                "body": bodies[i % len(bodies)] if i % 3 else f"Reminder {i}",
                "status": rng.choice(("delivered", "sent", "failed")),
                "num_segments": str(rng.randrange(1, 4)),
                "price": None if i % 5 == 0 else "-0.00790",
                "error_code": 30003 if i % 11 == 0 else None,
                "date_created": f"2026-01-01T{i % 24:02d}:00:00Z",
            }
        )
    return out


def to_lines(records: list[dict[str, object]]) -> list[bytes]:
    return [json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records]


def gz(lines: list[bytes], members: int = 1) -> bytes:
    """Lines as gzip, split over ``members`` gzip members (multi-member, as Twilio's big days may be)."""
    step = max(1, -(-len(lines) // members))
    return b"".join(gzip.compress(b"".join(lines[i : i + step]), mtime=0) for i in range(0, len(lines), step))


class Sink:
    def __init__(self) -> None:
        self.writes: list[int] = []
        self.buffer = io.BytesIO()

    def write(self, data: bytes) -> int:
        self.writes.append(len(data))
        return self.buffer.write(data)


def run(data: bytes, rules: Rules, **kwargs: object) -> tuple[RewriteResult, bytes]:
    sink = Sink()
    result = rewrite(io.BytesIO(data), sink, rules, **kwargs)  # type: ignore[arg-type]
    return result, sink.buffer.getvalue()


def checked_records(out: bytes) -> int:
    check = GzipCheck()
    check.feed(out)
    return check.finish(len(out))


ERASE = Rules.build([{"field": "to", "value": TARGET}])


def test_records_matching_an_erasure_are_dropped_and_the_rest_pass_through_byte_identical() -> None:
    lines = to_lines(fake_messages())
    result, out = run(gz(lines), ERASE)
    expected = [ln for ln in lines if json.loads(ln)["to"] != TARGET]
    assert gzip.decompress(out) == b"".join(expected)
    assert result.records_in == len(lines) == 3000
    assert result.records_dropped == len(lines) - len(expected) == 31
    assert result.records_out == len(expected) == checked_records(out)
    assert result.drops_by_rule == (31,)
    assert result.fields_transformed == 0
    assert result.changed


def test_no_match_leaves_every_line_identical() -> None:
    lines = to_lines(fake_messages())
    result, out = run(gz(lines), Rules.build([{"field": "to", "value": "+19999999999"}]))
    assert gzip.decompress(out) == b"".join(lines)
    assert (result.records_in, result.records_out, result.records_dropped) == (3000, 3000, 0)
    assert not result.changed


def test_a_value_in_another_field_does_not_drop_the_record() -> None:
    records = fake_messages(200)
    for r in records:
        r["body"] = f"call me at {TARGET}"
    result, out = run(gz(to_lines(records)), ERASE)
    assert result.records_dropped == sum(r["to"] == TARGET for r in records) == 3
    assert all(json.loads(ln)["to"] != TARGET for ln in gzip.decompress(out).splitlines())


def test_an_escaped_value_is_still_erased() -> None:
    """JSON may escape any character: a line Twilio wrote with \\u escapes holds the value without its bytes."""
    escaped = b'{"sid":"SM1","to":"\\u002b12125550100","body":"x"}\n'
    kept = b'{"sid":"SM2","to":"+10000000000","body":"\\"quoted\\""}\n'
    result, out = run(gz([escaped, kept]), ERASE)
    assert result.records_dropped == 1
    assert gzip.decompress(out) == kept


def test_an_erasure_on_a_value_json_must_escape() -> None:
    lines = to_lines(fake_messages(300))
    rules = Rules.build([{"field": "body", "value": 'He said "hi"'}])
    result, out = run(gz(lines), rules)
    assert result.records_dropped == sum(json.loads(ln)["body"] == 'He said "hi"' for ln in lines) > 0
    assert result.records_out == checked_records(out)


def test_multi_member_input_gives_the_same_output() -> None:
    lines = to_lines(fake_messages())
    one, out_one = run(gz(lines), ERASE)
    many, out_many = run(gz(lines, members=7), ERASE)
    assert out_one == out_many
    assert one.sha256 == many.sha256
    assert many.bytes_in == len(gz(lines, members=7))


def test_transforms_apply_to_every_record_and_keep_the_other_fields() -> None:
    records = fake_messages()
    result, out = run(gz(to_lines(records)), Rules.build(transforms=REDACT, salt=SALT))
    got = [json.loads(ln) for ln in gzip.decompress(out).splitlines()]
    assert len(got) == result.records_out == checked_records(out) == 3000
    for before, after in zip(records, got, strict=True):
        assert list(after) == list(before)
        assert after["body"] is None
        assert after["to"] == pseudonym(before["to"], SALT)
        assert after["from"] == pseudonym(before["from"], SALT)
        assert {k: v for k, v in after.items() if k not in REDACT} == {
            k: v for k, v in before.items() if k not in REDACT
        }
    assert result.fields_transformed == 3 * 3000


def test_erasure_and_transforms_together() -> None:
    records = fake_messages()
    result, out = run(gz(to_lines(records)), Rules.build([{"field": "to", "value": TARGET}], REDACT, SALT))
    assert result.records_dropped == 31
    got = [json.loads(ln) for ln in gzip.decompress(out).splitlines()]
    assert len(got) == 3000 - 31 == result.records_out
    assert pseudonym(TARGET, SALT) not in {r["to"] for r in got}


def test_a_second_redaction_changes_nothing() -> None:
    rules = Rules.build(transforms=REDACT, salt=SALT)
    _, once = run(gz(to_lines(fake_messages())), rules)
    again, twice = run(once, rules)
    assert again.fields_transformed == 0
    assert gzip.decompress(twice) == gzip.decompress(once)


def test_the_salt_changes_the_output() -> None:
    data = gz(to_lines(fake_messages(100)))
    _, a = run(data, Rules.build(transforms={"to": "sha256"}, salt=SALT))
    _, b = run(data, Rules.build(transforms={"to": "sha256"}, salt=SALT[::-1]))
    assert a != b
    assert PSEUDONYM_PREFIX.encode() in gzip.decompress(a)


def test_sha256_and_size_are_of_the_bytes_written_and_the_output_is_deterministic() -> None:
    data = gz(to_lines(fake_messages()), members=3)
    for rules in (ERASE, Rules.build(transforms=REDACT, salt=SALT)):
        result, out = run(data, rules)
        assert result.sha256 == hashlib.sha256(out).hexdigest()
        assert result.size == len(out)
        assert run(data, rules)[0].sha256 == result.sha256


def test_reads_and_writes_are_chunked() -> None:
    data = gz(to_lines(fake_messages(20000, seed=3)))

    class Source(io.BytesIO):
        sizes: ClassVar[list[int]] = []

        def read(self, size: int | None = -1, /) -> bytes:
            self.sizes.append(-1 if size is None else size)
            return super().read(size)

    source, sink = Source(data), Sink()
    rewrite(source, sink, Rules.build(transforms=REDACT, salt=SALT))
    assert set(source.sizes) == {READ_CHUNK}
    assert len(sink.writes) > 1
    assert max(sink.writes) < 2 * rewrite_module.WRITE_CHUNK


def test_the_last_line_without_a_newline_is_a_record() -> None:
    lines = to_lines(fake_messages(10))
    lines[-1] = lines[-1].rstrip(b"\n")
    result, out = run(gz(lines), Rules.build([{"field": "to", "value": "+19999999999"}]))
    assert gzip.decompress(out) == b"".join(lines)
    assert result.records_in == 10 == checked_records(out)
    dropped, out = run(gz([*lines[:-1], b'{"to":"+12125550100"}']), ERASE)
    assert dropped.records_out == checked_records(out) == 8  # record 0 is to TARGET too
    transformed, out = run(gz(lines), Rules.build(transforms={"body": "drop"}))
    assert transformed.records_out == checked_records(out) == 10
    assert not gzip.decompress(out).endswith(b"\n")


def test_empty_inputs() -> None:
    result, out = run(b"", ERASE)
    assert (out, result.records_in, result.size, result.sha256) == (b"", 0, 0, hashlib.sha256(b"").hexdigest())
    result, out = run(gzip.compress(b"", mtime=0), Rules.build(transforms=REDACT, salt=SALT))
    assert result.records_in == 0
    assert gzip.decompress(out) == b""
    assert scan(io.BytesIO(b""), ERASE).records == 0


def test_every_record_dropped_leaves_a_valid_empty_gzip() -> None:
    lines = [b'{"to":"+12125550100"}\n'] * 5
    result, out = run(gz(lines), ERASE)
    assert (result.records_in, result.records_out) == (5, 0)
    assert checked_records(out) == 0


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda d: d[: len(d) // 2], id="truncated"),
        pytest.param(lambda d: d[:100] + bytes([d[100] ^ 0xFF]) + d[101:], id="flipped"),
        pytest.param(lambda d: d + b"garbage!" * 4, id="trailing-garbage"),
        pytest.param(lambda d: d + b"\x00", id="trailing-nul"),
        pytest.param(lambda d: b"not gzip at all" * 10, id="not-gzip"),
    ],
)
def test_corrupt_gzip_is_an_error_in_rewrite_and_scan(damage: object) -> None:
    data = damage(gz(to_lines(fake_messages(2000))))  # type: ignore[operator]
    with pytest.raises(RewriteError, match="gzip"):
        run(data, ERASE)
    with pytest.raises(RewriteError, match="gzip"):
        scan(io.BytesIO(data), ERASE)


def test_a_line_that_is_not_json_is_an_error_with_its_number() -> None:
    lines = to_lines(fake_messages(50))
    lines[41] = b'{"sid":"SM-secret-content",\n'
    with pytest.raises(RewriteError, match=r"^line 42: not valid JSON") as caught:
        run(gz(lines), Rules.build(transforms={"body": "drop"}))
    assert caught.value.line == 42
    assert "secret" not in str(caught.value)


def test_an_invalid_line_that_could_hold_an_erased_value_is_an_error() -> None:
    lines = to_lines(fake_messages(50))
    lines[9] = b'{"to":"' + TARGET.encode() + b'"\n'
    with pytest.raises(RewriteError, match="line 10: not valid JSON"):
        run(gz(lines), ERASE)
    with pytest.raises(RewriteError, match="line 10: not valid JSON"):
        scan(io.BytesIO(gz(lines)), ERASE)


def test_parse_every_line_finds_an_invalid_line_the_pre_filter_passes() -> None:
    lines = to_lines(fake_messages(50))
    lines[19] = b"oops\n"
    assert scan(io.BytesIO(gz(lines)), ERASE).records == 50  # cannot hold the value: counted, not parsed
    with pytest.raises(RewriteError, match="line 20"):
        scan(io.BytesIO(gz(lines)), ERASE, parse_every_line=True)
    with pytest.raises(RewriteError, match="line 20"):
        run(gz(lines), ERASE, parse_every_line=True)


@pytest.mark.parametrize(("line", "message"), [(b"[1,2]\n", "a JSON list, not an object"), (b"\n", "not valid JSON")])
def test_every_line_must_be_an_object(line: bytes, message: str) -> None:
    lines = [*to_lines(fake_messages(3)), line]
    with pytest.raises(RewriteError, match=f"line 4: {message}"):
        run(gz(lines), Rules.build(transforms={"body": "drop"}))


def test_a_line_that_is_not_utf8_is_an_error_with_its_number() -> None:
    lines = [*to_lines(fake_messages(5)), b'{"body":"\xff\xfe"}\n']
    with pytest.raises(RewriteError, match="line 6: not UTF-8"):
        run(gz(lines), Rules.build(transforms={"body": "drop"}))


def test_whitespace_around_a_record_is_accepted() -> None:
    lines = [b'  {"to":"+1","body":"x"}  \r\n', b'{"to":"+2","body":"y"}\r\n']
    result, out = run(gz(lines), Rules.build(transforms={"body": "drop"}))
    assert result.fields_transformed == 2
    assert [json.loads(ln)["body"] for ln in gzip.decompress(out).splitlines()] == [None, None]


def test_a_line_longer_than_the_cap_is_an_error_not_a_buffer() -> None:
    long_line = b'{"body":"' + b"x" * (INFLATE_CHUNK + 10) + b'"}\n'
    lines = [*to_lines(fake_messages(3)), long_line, *to_lines(fake_messages(3))]
    with pytest.raises(RewriteError, match=f"line 4: longer than {INFLATE_CHUNK} bytes"):
        run(gz(lines), ERASE, max_line_bytes=INFLATE_CHUNK)
    result, _ = run(gz(lines), ERASE, max_line_bytes=2 * INFLATE_CHUNK)
    assert result.records_in == 7
    with pytest.raises(RewriteError, match="line 1: longer than"):
        run(gz([b"y" * (INFLATE_CHUNK + 1)]), ERASE, max_line_bytes=INFLATE_CHUNK)  # the last line, no newline


def test_the_line_cap_is_at_least_one_inflated_block() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        run(gz([b"{}\n"]), ERASE, max_line_bytes=1024)


def test_scan_counts_what_rewrite_drops() -> None:
    records = fake_messages()
    rules = Rules.build([{"field": "to", "value": TARGET}, {"field": "from", "value": str(records[5]["from"])}])
    data = gz(to_lines(records), members=4)
    found = scan(io.BytesIO(data), rules)
    result, _ = run(data, rules)
    assert found.records == result.records_in == 3000
    assert found.matching_records == result.records_dropped == 32
    assert found.matches_by_rule == result.drops_by_rule == (31, 1)
    assert found.needs_erasure
    assert found.bytes_in == len(data)
    assert scan(io.BytesIO(data), rules, parse_every_line=True) == found
    assert not scan(io.BytesIO(data), Rules.build(transforms=REDACT, salt=SALT)).needs_erasure


def test_memory_is_bounded_whatever_the_input_size() -> None:
    """~60 MiB of JSON lines that compress ~250x: the rewriter holds a few inflated blocks, never the file."""
    line = b'{"to":"+10000000000","from":"+10000000001","body":"' + b"a" * 400 + b'"}\n'
    data = gzip.compress(line * 130_000, compresslevel=1, mtime=0)
    tracemalloc.start()
    try:
        result, out = run(data, Rules.build([{"field": "to", "value": "+19999999999"}]))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.records_in == 130_000
    assert peak < 12 * MiB + len(out), f"peak {peak / MiB:.1f} MiB"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=8))
def test_inflated_blocks_do_not_depend_on_how_the_input_is_read(cuts: list[int]) -> None:
    data = gz(to_lines(fake_messages(300)), members=3)

    class Uneven(io.BytesIO):
        sizes = iter(cuts * 1000)

        def read(self, size: int | None = -1, /) -> bytes:
            return super().read(min(size or 0, next(self.sizes, 4096)))

    assert b"".join(inflated_blocks(Uneven(data))) == b"".join(inflated_blocks(io.BytesIO(data)))
