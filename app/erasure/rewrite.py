"""Stream a gzip JSON-lines day file through ``Rules``: drop erased records, transform fields, re-compress.

Memory is bounded whatever the file's size: the input is read in ``READ_CHUNK`` steps, inflated at most
``INFLATE_CHUNK`` bytes at a time (as ``app.bucket.gzip_check.GzipCheck`` does, with the same inflate backend),
handled line by line, and written in ``WRITE_CHUNK`` steps. A line longer than ``max_line_bytes`` is an error
(``RewriteError``), never an unbounded buffer.

**Unchanged lines pass through as their original bytes**, not re-serialised: a record that matches no erasure and
needs no transform is byte-identical in the output (no float, escape or key-order drift; cheaper too), and only a
transformed record is re-serialised (compact JSON, ASCII-escaped so the output is always valid UTF-8). The output
is one gzip member, deterministic for a given input and rules (header mtime 0).

**Erasure without transforms parses only the lines that could match.** A line whose bytes contain no backslash
has no JSON escapes, so each of its strings is its raw UTF-8 bytes: if none of the matches' values occurs in it,
no field can equal one. Such lines are counted and copied without parsing; a line holding a value's bytes or any
backslash is parsed and compared field by field. So a scan costs about what a verification costs, and a line
passed through unparsed can never hide an erased value. With transforms (or ``parse_every_line``) every line is
parsed, and a line that is not a JSON object is a ``RewriteError`` with its line number.

Errors: corrupt or truncated gzip, a line that is not JSON, not an object, not UTF-8 or too long raise
``RewriteError`` (a ``ValueError``; its message has the line number, never the line's content). The sink has
then received part of a stream: the caller discards it (aborts the upload), never publishes it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from json.scanner import make_scanner
from types import ModuleType
from typing import Any, Protocol

from app.bucket import gzip_check
from app.bucket.gzip_check import INFLATE_CHUNK
from app.erasure.rules import Rules

MiB = 1024 * 1024
READ_CHUNK = MiB
WRITE_CHUNK = MiB
MAX_LINE_BYTES = 16 * MiB


def _deflate_backend() -> tuple[ModuleType, int]:
    """ISA-L's zlib-compatible deflater at its level 2 if ``isal`` is installed, else zlib at level 3.

    Measured on Message JSON lines (bench/erasure_throughput.py and this module's development): ISA-L level 2
    compresses ~450 MiB/s of JSON at a ratio of 5.1, zlib level 3 ~85 MiB/s at 5.1, zlib 6 (what the sandbox's
    day files use) ~48 MiB/s at 5.8. A rewrite runs once per erasure; a day's size grows ~14 % against zlib 6,
    its rewrite time shrinks ~9x, which keeps a several-GiB day within a worker's job timeout."""
    try:
        return importlib.import_module("isal.isal_zlib"), 2
    except ImportError:
        return zlib, 3


DEFLATE, DEFLATE_LEVEL = _deflate_backend()  # tests swap them to check both backends

_SCAN: Any = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # the C scanner takes a decoder


def _encoder() -> Any:
    """Compact, ASCII-escaped JSON of one record. The C encoder built once when available: ``json.dumps`` builds
    it on every call, which was ~1/3 of the cost of re-serialising a Message record."""
    separators = (",", ":")
    if c_make_encoder is None:
        return json.JSONEncoder(separators=separators).encode

    def unserialisable(obj: object) -> None:
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    make = c_make_encoder(None, unserialisable, encode_basestring_ascii, None, ":", ",", False, False, True)
    return lambda record: "".join(make(record, 0))


_ENCODE = _encoder()


class RewriteError(ValueError):
    """The input is not an intact gzip JSON-lines day file; ``line`` is the 1-based line number when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


@dataclass(frozen=True)
class ScanResult:
    """What ``scan`` found: ``records`` lines, ``matching_records`` of them matched at least one erasure match;
    ``matches_by_rule[i]``: records matching ``rules.matches[i]`` (for the audit record of each request)."""

    records: int
    matching_records: int
    matches_by_rule: tuple[int, ...]
    bytes_in: int

    @property
    def needs_erasure(self) -> bool:
        return self.matching_records > 0


@dataclass(frozen=True)
class RewriteResult:
    """What ``rewrite`` did. ``sha256``/``size``: of the bytes written to the sink (what S3 must hold)."""

    records_in: int
    records_out: int
    records_dropped: int
    fields_transformed: int
    drops_by_rule: tuple[int, ...]
    sha256: str
    size: int
    bytes_in: int

    @property
    def changed(self) -> bool:
        return self.records_dropped > 0 or self.fields_transformed > 0


def inflated_blocks(source: Readable, read_chunk: int = READ_CHUNK) -> Iterator[bytes]:
    """The inflated bytes of a (multi-member) gzip stream read from ``source``, at most ``INFLATE_CHUNK`` per
    block. Empty input yields nothing (an empty day file); corrupt or truncated input raises ``RewriteError``."""
    backend = gzip_check.INFLATE
    errors = (zlib.error, backend.error)
    inflater = backend.decompressobj(wbits=31)
    member, got_input = 1, False
    while chunk := source.read(read_chunk):
        got_input, data = True, chunk
        while True:
            if inflater.eof:
                inflater, member = backend.decompressobj(wbits=31), member + 1
            try:
                out = inflater.decompress(data, INFLATE_CHUNK)
            except errors as exc:
                raise RewriteError(f"corrupt gzip data in member {member}: {exc}") from None
            if out:
                yield out
            if inflater.eof:
                data = inflater.unused_data
                if not data:
                    break
                continue
            data = inflater.unconsumed_tail
            if not data and len(out) < INFLATE_CHUNK:
                break
    if got_input and not inflater.eof:
        raise RewriteError(f"gzip stream truncated: ends inside member {member}")


class _GzipWriter:
    """Deflate into one gzip member, writing ``WRITE_CHUNK``-sized pieces to the sink; SHA-256 and size of them."""

    def __init__(self, sink: Writable) -> None:
        self._sink = sink
        self._deflater: Any = DEFLATE.compressobj(DEFLATE_LEVEL, DEFLATE.DEFLATED, 31)
        self._pending: list[bytes] = []
        self._buffered = 0
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._hold(self._deflater.compress(data))

    def close(self) -> str:
        self._hold(self._deflater.flush())
        self._drain()
        return self._sha.hexdigest()

    def _hold(self, out: bytes) -> None:
        if out:
            self._pending.append(out)
            self._buffered += len(out)
            if self._buffered >= WRITE_CHUNK:
                self._drain()

    def _drain(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending, self._buffered = [], 0
            self._sha.update(data)
            self.size += len(data)
            self._sink.write(data)


def _records_in(region: bytes) -> int:
    return region.count(b"\n") + (1 if region and region[-1] != 0x0A else 0)


def _parse(line: str, number: int) -> dict[str, Any]:
    """One line as a JSON object, or ``RewriteError``. The C scanner first (no per-call set-up), ``json.loads``
    for its verdict when the scanner does not take the whole line (leading/trailing whitespace, or an error)."""
    try:
        obj, end = _SCAN(line, 0)
    except (StopIteration, ValueError):
        obj, end = None, -1
    if end != len(line):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RewriteError(f"not valid JSON ({exc.msg} at column {exc.colno})", number) from None
    if not isinstance(obj, dict):
        raise RewriteError(f"a JSON {type(obj).__name__}, not an object", number)
    return obj


def _decode(region: bytes, first_line: int) -> str:
    try:
        return region.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RewriteError("not UTF-8", first_line + region.count(b"\n", 0, exc.start)) from None


class _CountingReader:
    def __init__(self, source: Readable) -> None:
        self._source = source
        self.size = 0

    def read(self, size: int, /) -> bytes:
        data = self._source.read(size)
        self.size += len(data)
        return data


class _Pass:
    """One pass over a day file's lines: splits inflated blocks into whole lines, applies the rules, counts."""

    def __init__(self, rules: Rules, max_line_bytes: int) -> None:
        if max_line_bytes < INFLATE_CHUNK:
            raise ValueError(f"max_line_bytes must be >= {INFLATE_CHUNK} (one inflated block)")
        self.rules = rules
        self.max_line_bytes = max_line_bytes
        needles = {m.needle for m in rules.matches}
        self.needles: tuple[bytes, ...] = (*sorted(needles), b"\\") if needles else ()
        self.records_in = 0
        self.dropped = 0
        self.transformed = 0
        self.by_rule = [0] * len(rules.matches)

    def regions(self, blocks: Iterator[bytes]) -> Iterator[bytes]:
        """Runs of whole lines (each ending with a newline), then the last line if it has none. The caller
        handles each region before the next is cut, so ``records_in`` numbers the lines in errors."""
        pending: list[bytes] = []
        held = 0
        for block in blocks:
            last = block.rfind(b"\n")
            if last < 0:
                pending.append(block)
                held += len(block)
                self._check_length(held)
                continue
            if pending:
                self._check_length(held + block.find(b"\n") + 1)
            yield b"".join([*pending, block[: last + 1]])
            rest = block[last + 1 :]
            pending, held = ([rest], len(rest)) if rest else ([], 0)
            self._check_length(held)
        if held:
            yield b"".join(pending)

    def _check_length(self, length: int) -> None:
        if length > self.max_line_bytes:
            raise RewriteError(f"longer than {self.max_line_bytes} bytes", self.records_in + 1)

    def erase(self, region: bytes, emit: bool) -> bytes:
        """Drop the matching lines of ``region``, parsing only the lines that could match (see the module)."""
        number = self.records_in + 1
        self.records_in += _records_in(region)
        spans = self._candidates(region)
        if not spans:
            return region
        out: list[bytes] = []
        kept_from = previous = 0
        for start, end in spans:
            number += region.count(b"\n", previous, start)
            previous = start
            hits = self.rules.matching(_parse(_decode(region[start:end], number), number))
            if hits:
                self._drop(hits)
                out.append(region[kept_from:start])
                kept_from = end + 1
        if not emit or kept_from == 0:
            return region if emit else b""
        out.append(region[kept_from:])
        return b"".join(out)

    def _candidates(self, region: bytes) -> list[tuple[int, int]]:
        """(start, end) of each line holding a needle; ``end`` is the index of its newline (or the region's end)."""
        spans: set[tuple[int, int]] = set()
        for needle in self.needles:
            pos = region.find(needle)
            while pos >= 0:
                start = region.rfind(b"\n", 0, pos) + 1
                end = region.find(b"\n", pos)
                if end < 0:
                    spans.add((start, len(region)))
                    break
                spans.add((start, end))
                pos = region.find(needle, end + 1)
        return sorted(spans)

    def _drop(self, hits: list[int]) -> None:
        self.dropped += 1
        for i in hits:
            self.by_rule[i] += 1

    def full(self, region: bytes, emit: bool, transform: bool) -> bytes:
        """Parse every line of ``region``: drop the matching ones, transform (and re-serialise) the others."""
        first = self.records_in + 1
        text = _decode(region, first)
        lines = text.split("\n")
        newline_ended = text.endswith("\n")
        if newline_ended:
            lines.pop()
        self.records_in += len(lines)
        out: list[str] = []
        rules = self.rules
        for offset, line in enumerate(lines):
            record = _parse(line, first + offset)
            hits = rules.matching(record) if rules.matches else None
            if hits:
                self._drop(hits)
                continue
            if transform and (changed := rules.transform(record)):
                self.transformed += changed
                line = _ENCODE(record) + ("\r" if line.endswith("\r") else "")
            out.append(line)
        if not emit or not out:
            return b""
        return ("\n".join(out) + ("\n" if newline_ended else "")).encode("utf-8")


def scan(
    source: Readable, rules: Rules, *, parse_every_line: bool = False, max_line_bytes: int = MAX_LINE_BYTES
) -> ScanResult:
    """Count the records of a day file that ``rules.matches`` would erase, writing nothing (transforms ignored).

    About the cost of a gzip verification: only lines that could match are parsed (``parse_every_line`` parses
    them all, which also proves every line is a JSON object). Raises ``RewriteError`` like ``rewrite``."""
    counter = _CountingReader(source)
    run = _Pass(rules, max_line_bytes)
    for region in run.regions(inflated_blocks(counter)):
        if parse_every_line:
            run.full(region, emit=False, transform=False)
        else:
            run.erase(region, emit=False)
    return ScanResult(run.records_in, run.dropped, tuple(run.by_rule), counter.size)


def rewrite(
    source: Readable,
    sink: Writable,
    rules: Rules,
    *,
    parse_every_line: bool = False,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> RewriteResult:
    """Read the gzip JSON-lines day file ``source``, write it to ``sink`` without the records matching any of
    ``rules.matches`` and with ``rules.transforms`` applied to the others, as one gzip member.

    Empty input gives empty output (an empty day file stays one). On ``RewriteError`` (or any error of the
    source or sink) the sink holds an unfinished stream: discard it. ``sink`` is written, never flushed or
    closed. The result's ``sha256`` and ``size`` are of the bytes written."""
    counter = _CountingReader(source)
    run = _Pass(rules, max_line_bytes)
    writer = _GzipWriter(sink)
    full = parse_every_line or bool(rules.transforms)
    for region in run.regions(inflated_blocks(counter)):
        writer.write(run.full(region, True, True) if full else run.erase(region, True))
    sha256 = writer.close() if counter.size else hashlib.sha256().hexdigest()
    return RewriteResult(
        records_in=run.records_in,
        records_out=run.records_in - run.dropped,
        records_dropped=run.dropped,
        fields_transformed=run.transformed,
        drops_by_rule=tuple(run.by_rule),
        sha256=sha256,
        size=writer.size,
        bytes_in=counter.size,
    )
