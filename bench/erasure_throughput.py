"""Erasure and redaction rewrite of a day file (issue 22): throughput, CPU and peak RSS, against a verifying copy.

    .venv/bin/python -m bench.erasure_throughput [--quick] [--size-mib 256] [--rounds 1]

One generated gzip JSON-lines day file (Twilio-like Message records, ~440 bytes a line, multi-member, each
member deflated at zlib level 6 like the sandbox's, inflating ~5.8x) of about ``--size-mib`` MiB, on local disk.
Four modes, each in a fresh child interpreter that first imports the same modules (so RSS figures compare):

- ``copy`` (a, the baseline): what the copy path does to the bytes: ``workers.copy.VerifyingReader`` over the
  file's chunks (SHA-256, GzipCheck inflate + CRC/length + record count), read in the sink's part-sized steps
  and written unchanged to a local file.
- ``scan`` (b): ``app.erasure.rewrite.scan`` for one value present in ~0.1 % of the records (decides whether a
  day needs rewriting; writes nothing).
- ``erase`` (c): ``rewrite`` dropping the records with that value (``to`` equals it): ~0.1 % of the records,
  the rest passed through as their original bytes, re-deflated; written to a local file.
- ``redact`` (d): ``rewrite`` with ``{"body": "drop", "to": "sha256", "from": "sha256"}`` on every record: every
  line parsed, transformed and re-serialised.

Throughput is input (compressed) bytes / seconds of the call. CPU-s per GiB is the child's process CPU over the
call. Peak RSS is the child's ``VmHWM`` (not ``ru_maxrss``: see bench/copy_throughput.py); "added" is VmHWM after
minus before the call. Outputs are checked after the measurement (GzipCheck record count = the result's
``records_out``), then deleted. Modes rotate their order every round. Target: peak RSS <= 150 MiB (the copy
path's budget for a 1 GiB day); throughput ratios are reported, not judged.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.platform.units import GiB, MiB
from bench.common import BenchResult, Figure, child_env, run_json_child, workdir
from devstack.procs import python_argv
from sandbox.content import record

MODES = ("copy", "scan", "erase", "redact")
TARGET = "+12125550100"
SALT = b"bench-salt-not-a-secret-0123456789"
REDACT = {"body": "drop", "to": "sha256", "from": "sha256"}
POOL_RECORDS = 40_000  # records of one member; the file repeats it (deflate's window is 32 KiB: no cross-member gain)
MATCH_EVERY = 1000  # one record in MATCH_EVERY is to TARGET: ~0.1 %
BASE = datetime(2026, 1, 1, tzinfo=UTC)  # the day the generated records are dated
TARGET_RSS_MIB = 150.0


# -- child side ----------------------------------------------------------------------------------------


def _child(mode: str, path: str, out_path: str) -> None:
    """One mode in this fresh interpreter; prints JSON: seconds, CPU, RSS, the result's counts."""
    import workers.copy  # noqa: F401 - every mode imports the same modules, so their RSS baselines compare
    from app.erasure.rules import Rules

    if mode == "redact":
        rules = Rules.build(transforms=REDACT, salt=SALT)
    else:
        rules = Rules.build([{"field": "to", "value": TARGET}])
    size = os.path.getsize(path)
    rss_before = _vm_hwm_mib()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    counts = _run_mode(mode, path, out_path, size, rules)
    seconds = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    out = {"mode": mode, "size": size, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": _vm_hwm_mib()}
    out |= {"rss_before_mib": rss_before, **counts}
    print(json.dumps(out))


def _run_mode(mode: str, path: str, out_path: str, size: int, rules: Any) -> dict[str, Any]:
    from app.erasure.rewrite import rewrite, scan

    if mode == "copy":
        return _verifying_copy(path, out_path, size)
    if mode == "scan":
        with open(path, "rb") as source:
            found = scan(source, rules)
        return {"records_in": found.records, "records_dropped": found.matching_records}
    with open(path, "rb") as source, open(out_path, "wb") as sink:
        result = rewrite(source, sink, rules)
    return {
        "records_in": result.records_in,
        "records_out": result.records_out,
        "records_dropped": result.records_dropped,
        "fields_transformed": result.fields_transformed,
        "output_size": result.size,
    }


def _verifying_copy(path: str, out_path: str, size: int) -> dict[str, Any]:
    """Baseline (a): the copy path's checks on the bytes as they pass, the bytes written unchanged."""
    from workers.copy import READ_CHUNK, VerifyingReader
    from workers.sink import part_size_for

    def chunks() -> Any:
        with open(path, "rb") as source:
            while chunk := source.read(READ_CHUNK):
                yield chunk

    reader = VerifyingReader(chunks(), size)
    with open(out_path, "wb") as sink:
        while piece := reader.read(part_size_for(size)):
            sink.write(piece)
    digest = reader.digest()
    return {"records_in": digest.records, "records_out": digest.records, "output_size": digest.size}


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


# -- parent side ---------------------------------------------------------------------------------------


def _message(rng: random.Random, i: int) -> dict[str, object]:
    """The sandbox's Message record (sandbox/content.py), every MATCH_EVERY-th one sent to TARGET."""
    rec = record("Messages", rng, "AC" + "0" * 32, BASE)
    if i % MATCH_EVERY == 0:
        rec["to"] = TARGET
    return rec


def make_day_file(path: Path, size: int) -> dict[str, int]:
    """A multi-member day file of about ``size`` bytes (whole members): one pool member repeated."""
    rng = random.Random(22)
    text = b"".join(json.dumps(_message(rng, i), separators=(",", ":")).encode() + b"\n" for i in range(POOL_RECORDS))
    member = gzip.compress(text, compresslevel=6, mtime=0)
    members = max(1, round(size / len(member)))
    with open(path, "wb") as out:
        for _ in range(members):
            out.write(member)
    return {
        "size": members * len(member),
        "members": members,
        "records": members * POOL_RECORDS,
        "matching": members * (POOL_RECORDS // MATCH_EVERY),
        "inflated": members * len(text),
    }


def measure(mode: str, path: Path, work: Path) -> dict[str, Any]:
    out_path = work / f"out-{mode}.json.gz"
    argv = python_argv("-m", "bench.erasure_throughput", "--child", mode, str(path), str(out_path))
    load = os.getloadavg()[0]
    timeout = 120 + path.stat().st_size / MiB * 4  # >= 0.25 MiB/s: a bound, not a target
    out = run_json_child(argv, child_env(), timeout, work / f"child-{mode}.log")
    out["load_average_1m_before"] = round(load, 2)
    out["mib_per_s"] = out["size"] / MiB / out["seconds"]
    if out_path.exists():
        out["output_records_checked"] = _check_output(out_path)
        out_path.unlink()
    return out


def _check_output(path: Path) -> int:
    """The rewritten file as the relay would verify it (GzipCheck): its record count."""
    from app.bucket.gzip_check import GzipCheck

    check = GzipCheck()
    with open(path, "rb") as source:
        while chunk := source.read(MiB):
            check.feed(chunk)
    return check.finish(path.stat().st_size)


def _line(r: dict[str, Any], base: float) -> str:
    return (
        f"  {r['mode']:<7} {r['mib_per_s']:7.1f} MiB/s  {r['mib_per_s'] / base:5.2f}x copy  {r['seconds']:6.2f} s  "
        f"cpu {r['cpu_seconds']:6.1f} s  peak RSS {r['peak_rss_mib']:6.1f} MiB "
        f"(+{r['peak_rss_mib'] - r['rss_before_mib']:.1f})  load {r['load_average_1m_before']:.2f}"
    )


def _check(r: dict[str, Any], day: dict[str, int]) -> None:
    """Every mode saw every record; the erasure dropped exactly the planted ones; outputs verify."""
    expected_drops = {"scan": day["matching"], "erase": day["matching"], "redact": 0, "copy": 0}[r["mode"]]
    if r["records_in"] != day["records"] or r.get("records_dropped", 0) != expected_drops:
        raise RuntimeError(f"{r['mode']}: counts {r} do not match the generated file {day}")
    if "output_records_checked" in r and r["output_records_checked"] != r["records_out"]:
        raise RuntimeError(f"{r['mode']}: GzipCheck counted {r['output_records_checked']}, not {r['records_out']}")


def run(quick: bool = False, size_mib: int | None = None, rounds: int | None = None) -> BenchResult:
    size = (size_mib or (64 if quick else 256)) * MiB
    rounds = rounds or 1
    result = BenchResult("erasure_throughput")
    work = workdir("erasure_throughput")
    path = work / "day.json.gz"
    day = make_day_file(path, size)
    print(
        f"erasure_throughput: {day['size'] / MiB:.0f} MiB gzip ({day['members']} members, {day['records']} records, "
        f"{day['inflated'] / day['size']:.2f}x inflated), {rounds} round(s); logs in {work}",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    try:
        for i in range(rounds):
            for mode in MODES[i % len(MODES) :] + MODES[: i % len(MODES)]:
                r = measure(mode, path, work)
                _check(r, day)
                runs[mode].append(r)
                base = runs["copy"][-1]["mib_per_s"] if runs["copy"] else r["mib_per_s"]
                print(_line(r, base), flush=True)
    finally:
        path.unlink(missing_ok=True)
    _figures(result, day, runs)
    return result


def _pooled(rs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = sum(r["seconds"] for r in rs)
    return {
        "mib_per_s": sum(r["size"] for r in rs) / MiB / seconds,
        "cpu_per_gib": sum(r["cpu_seconds"] for r in rs) / (sum(r["size"] for r in rs) / GiB),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
        "rss_added_mib": max(r["peak_rss_mib"] - r["rss_before_mib"] for r in rs),
        "output_size": rs[-1].get("output_size"),
    }


def _figures(result: BenchResult, day: dict[str, int], runs: dict[str, list[dict[str, Any]]]) -> None:
    p = {m: _pooled(runs[m]) for m in MODES}
    label = f"{day['size'] // MiB} MiB"
    notes = {
        "copy": "(a) baseline: VerifyingReader (SHA-256, inflate, CRC, records) + write the same bytes",
        "scan": "(b) count records matching one value (~0.1 %), nothing written",
        "erase": "(c) rewrite dropping ~0.1 % of records; the rest passed through, re-deflated",
        "redact": "(d) rewrite with body dropped, to/from pseudonymised on every record",
    }
    for mode in MODES:
        result.add(Figure(f"{mode} {label}", p[mode]["mib_per_s"], "MiB/s", note=notes[mode]))
    for mode in MODES[1:]:
        ratio = p[mode]["mib_per_s"] / p["copy"]["mib_per_s"]
        result.add(Figure(f"{mode} / copy {label}", ratio, "x", note="same file, same run"))
    for mode in MODES:
        result.add(Figure(f"CPU-s per GiB, {mode} {label}", p[mode]["cpu_per_gib"], "s"))
    for mode in MODES:
        result.add(Figure(f"peak RSS, {mode} {label}", p[mode]["peak_rss_mib"], "MiB", TARGET_RSS_MIB, "<="))
        result.add(Figure(f"RSS added by the call, {mode} {label}", p[mode]["rss_added_mib"], "MiB"))
    for mode in ("erase", "redact"):
        out_size = p[mode]["output_size"] or 0
        result.add(Figure(f"output / input size, {mode} {label}", out_size / day["size"], "x"))
    result.details["day_file"] = day
    result.details["runs"] = runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 64 MiB file")
    parser.add_argument("--size-mib", type=int, help="compressed size of the day file (default 256)")
    parser.add_argument("--rounds", type=int, help="rounds of the four modes (default 1)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.size_mib is not None and not 4 <= args.size_mib <= 8192:
        parser.error("--size-mib must be 4..8192")
    if args.rounds is not None and not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1..10")
    res = run(args.quick, args.size_mib, args.rounds)
    print(json.dumps({k: v for k, v in res.to_json().items() if k != "details"}, indent=2))
    sys.exit(0 if res.passed else 1)


if __name__ == "__main__":
    main()
