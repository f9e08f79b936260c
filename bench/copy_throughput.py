"""Day-file copy throughput, CPU and worker memory, against the two stages a verifying copy cannot beat, same run.

    .venv/bin/python -m bench.copy_throughput [--quick] [--sizes-mib 64 1024] [--rounds 3] [--profile]

A verifying copy downloads, verifies and uploads; it can go no faster than the slower of its two necessary
stages, so both are measured as baselines next to it (issue 13):

- ``copy`` (the relay): ``workers.copy.copy_link_to_s3`` with a fresh FetchDay link (from the service's own
  ``BulkExportsClient.day_link``) and the worker's sink as ``workers.tasks.sink`` builds it (default settings:
  a day over ``S3_SINGLE_PUT_MAX_MIB`` streams into a multipart upload of the final key, SHA-256 per part).
- ``upload_file`` (a): boto3 ``upload_file`` of the same bytes from local disk to the same SeaweedFS, default
  TransferConfig, the same client configuration (``app.platform.s3_client.make_s3_client``).
- ``verify_only`` (b): the same download (``open_link`` + ``body_chunks``) through the same checks
  (``workers.copy.VerifyingReader``: SHA-256, gzip inflate + CRC/length, records), read in part-sized steps
  as the sink reads it, uploading nothing.

Target: copy >= 0.9 x min(a, b) at every size. The day files are the sandbox's (realistic gzip JSON lines,
Messages, inflating ~5.8x), exactly the requested size. S3 is SeaweedFS (``weed mini``) over TLS with its
metrics listener (bench.seaweed): write amplification of every copy comes from the server's own counters.

Each measurement is a fresh child interpreter that first imports what the rq worker imports
(``workers.tasks``). Throughput is bytes / seconds of the transfer call. CPU-s per GiB is the child's own
process CPU (all threads) over the transfer; SeaweedFS's CPU and the sandbox's (serving the download) are
measured separately and *not* included in it. Peak RSS is the child's ``VmHWM``; "added by the transfer" is
VmHWM after minus before the transfer call. Modes rotate their order every round; each mode's figure pools
its rounds (total bytes / total seconds). Objects are deleted after every run and the disk reclaimed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

from app.platform.units import GiB, MiB
from bench.common import BenchResult, Figure, child_env, run_json_child, workdir
from bench.pprof import summarize as pprof_summary
from bench.profiling import py_spy_binary, summarize
from bench.seaweed import MeteredSeaweedS3Server
from devstack.procs import python_argv, stop_all
from devstack.relay import local_download_env
from devstack.sandbox_process import SandboxProcess

BUCKET = "relay-bench-copy"
RESOURCE_TYPE = "Messages"
MODES = ("copy", "verify_only", "upload_file")
TARGET_RATIO = 0.9  # copy / min(upload_file, verify_only)
TARGET_RSS_MIB = 150.0
TARGET_RSS_GROWTH = 1.25
CORES = len(os.sched_getaffinity(0))
SINGLE_PUT_PROBE_MIB = 16  # the default S3_SINGLE_PUT_MAX_MIB: the biggest day held in memory whole


# -- child side ----------------------------------------------------------------------------------------


def _child(mode: str, source: str, size: int, key: str) -> None:
    """One transfer in this fresh interpreter; prints JSON: seconds, CPU, RSS, phase times."""
    import workers.tasks  # noqa: F401 - what the rq worker has imported before its first task (RSS)
    from app.platform.s3_client import make_s3_client

    client = make_s3_client()
    bucket = os.environ["BENCH_BUCKET"]
    rss_before = _vm_hwm_mib()
    phases: dict[str, float] = {}
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if mode == "copy":
        stored_key, stored_size = _copy(client, bucket, source, size, key, phases)
    elif mode == "verify_only":
        stored_key, stored_size = "", _verify_only(source, size)
    elif mode == "upload_file":
        stored_key = f"baseline/{key}.json.gz"
        client.upload_file(source, bucket, stored_key)
        stored_size = os.path.getsize(source)
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    if stored_size != size:
        raise SystemExit(f"{mode} handled {stored_size} bytes, expected {size}")
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    out = {"mode": mode, "size": size, "seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": _vm_hwm_mib()}
    out |= {"rss_before_transfer_mib": rss_before, "phases": phases, "key": stored_key}
    print(json.dumps(out))


def _copy(client: Any, bucket: str, source: str, size: int, key: str, phases: dict[str, float]) -> tuple[str, int]:
    """The relay's copy, with the worker's sink (as workers.tasks.sink builds it from default settings)."""
    from app.platform.config import load_settings
    from app.platform.url_policy import download_policy
    from workers.copy import copy_link_to_s3
    from workers.sink import S3Sink, SinkSettings

    relay_settings = load_settings(_relay_settingsenv(bucket))
    single_put_max = relay_settings.s3_single_put_max_mib * MiB
    settings = SinkSettings(bucket=bucket, prefix="twilio/", single_put_max=single_put_max)
    sink = S3Sink(client, settings)
    sink.writer = _timed_writer(phases)(sink)
    metadata = {"job_sid": "JSbench", "resource_type": RESOURCE_TYPE, "day": key, "twilio_create_date": ""}
    day_key = sink.day_key(RESOURCE_TYPE, key, "JSbench")
    result = copy_link_to_s3(source, size, sink, day_key, metadata, policy=download_policy(relay_settings))
    return result.key, result.size


def _verify_only(source: str, size: int) -> int:
    """Baseline (b): the copy's download and checks, nothing uploaded; read in the sink's part-sized steps."""
    from app.platform.config import load_settings
    from app.platform.url_policy import download_policy
    from workers.copy import VerifyingReader, body_chunks, open_link
    from workers.sink import part_size_for

    step = part_size_for(size)
    policy = download_policy(load_settings(_relay_settingsenv("bench")))
    with closing(open_link(source, policy=policy)) as resp:
        reader = VerifyingReader(body_chunks(resp), size)
        while reader.read(step):
            pass
    return reader.digest().size


def _relay_settingsenv(bucket: str) -> dict[str, str]:
    """The minimal environment contract plus whatever S3_* the caller set (so the defaults are the shipped ones) and
    the download policy's settings (the sandbox's links)."""
    env = {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "bench",
        "PUBLIC_BASE_URL": "http://127.0.0.1:9",
        "S3_BUCKET": bucket,
        "ADMIN_TOKEN": "bench-admin-token-0123456789",
    }
    local = ("S3_", "DOWNLOAD_", "TWILIO_BULKEXPORTS_BASE_URL")  # and the sandbox's links: http on loopback
    return env | {k: v for k, v in os.environ.items() if k.startswith(local)}


def _vm_hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM). Not ``ru_maxrss``: Linux carries the pre-exec maximum over
    execve, so a child's ru_maxrss is at least the RSS of the parent that forked it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def _timed_writer(phases: dict[str, float]) -> Any:
    """The sink's writer (``workers.sink.writes.DayWriter``) with its S3 phases timed; the code that runs is its own."""
    from workers.sink.writes import DayWriter

    def timed(name: str, method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    wrapped = {
        "_put_verified": "single PUT (download+verify into memory, then PutObject)",
        "_upload_parts": "download+verify+upload parts",
        "_complete": "complete multipart upload",
        "_tag": "digest tags",
    }
    return type("TimedDayWriter", (DayWriter,), {m: timed(name, getattr(DayWriter, m)) for m, name in wrapped.items()})


# -- parent side ---------------------------------------------------------------------------------------


def day_offset(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def twilio_client(sandbox: SandboxProcess) -> Any:
    """The service's own Twilio client (FetchDay without following the 307), pointed at the sandbox."""
    from app.platform.config import load_settings
    from app.twilio.client import BulkExportsClient

    env = _relay_settingsenv(BUCKET) | {
        "TWILIO_ACCOUNT_SID": sandbox.account_sid,
        "TWILIO_AUTH_TOKEN": sandbox.auth_token,
        "TWILIO_BULKEXPORTS_BASE_URL": sandbox.api_url,
    }
    return BulkExportsClient(load_settings(env))


def prepare_days(sandbox: SandboxProcess, sizes: list[int]) -> dict[int, str]:
    """One completed sandbox job whose days have exactly the given sizes; returns size -> day."""
    days = {size: day_offset(3 + i) for i, size in enumerate(sizes)}
    sandbox.set_scenario(
        days={f"{RESOURCE_TYPE}/{d}": {"outcome": "completed", "size": s} for s, d in days.items()},
        link_ttl_seconds=3600,
        webhook={"drop": True},
    )
    r = requests.post(
        f"{sandbox.api_url}/v1/Exports/{RESOURCE_TYPE}/Jobs",
        auth=sandbox.auth,
        data={"StartDay": min(days.values()), "EndDay": max(days.values()), "FriendlyName": "bench copy"},
        timeout=30,
    )
    r.raise_for_status()
    sandbox.complete(r.json()["job_sid"])
    return days


def _download(link: str, path: Path, size: int) -> None:
    with requests.get(link, stream=True, timeout=(10, 120)) as resp, open(path, "wb") as out:
        resp.raise_for_status()
        for chunk in resp.iter_content(MiB):
            out.write(chunk)
    if path.stat().st_size != size:
        raise RuntimeError(f"downloaded {path.stat().st_size} bytes of the {size}-byte day file")


def _cpu(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.NoSuchProcess:
        return 0.0


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def measure(
    mode: str,
    source: str,
    size: int,
    key: str,
    s3: MeteredSeaweedS3Server,
    sandbox: SandboxProcess,
    work: Path,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    """One child run of ``mode``, with the S3 server's and the sandbox's CPU and the server's byte counters."""
    extra = {"BENCH_BUCKET": BUCKET, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    env = child_env({**s3.env(), **extra} | local_download_env(sandbox))  # the sandbox's links: http on loopback
    argv = python_argv("-m", "bench.copy_throughput", "--child", mode, source, str(size), key)
    if profile_to is not None:
        spy = py_spy_binary()
        assert spy is not None
        argv = [spy, "record", "--format", "raw", "--threads", "-r", "100", "-o", str(profile_to), "--", *argv]
    load = os.getloadavg()[0]
    s3_cpu0, sandbox0, machine0 = _cpu(s3.pid), _cpu(sandbox.pid or 0), _machine_busy()
    received0, stored0 = s3.received_bytes(BUCKET), s3.volume_bytes()
    timeout = 120 + size / MiB * 2  # >= 0.5 MiB/s, far below anything plausible: a bound, not a target
    out = run_json_child(argv, env, timeout, work / f"child-{mode}.log")
    out["s3_cpu_seconds"] = _cpu(s3.pid) - s3_cpu0
    out["sandbox_cpu_seconds"] = _cpu(sandbox.pid or 0) - sandbox0
    # The rest of the machine's busy CPU over the run (the child's start-up, and anything else running).
    known = out["cpu_seconds"] + out["s3_cpu_seconds"] + out["sandbox_cpu_seconds"]
    out["other_cpu_seconds"] = max(0.0, _machine_busy() - machine0 - known)
    out["s3_received_bytes"] = s3.received_bytes(BUCKET) - received0
    out["s3_volume_bytes_added"] = s3.volume_bytes() - stored0
    out["load_average_1m_before"] = round(load, 2)
    out["mib_per_s"] = size / MiB / out["seconds"]
    return out


def clean_bucket(s3: MeteredSeaweedS3Server) -> int:
    """Delete every object and abort every multipart upload, then reclaim the disk (GiBs per run)."""
    client = s3.client()
    removed = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents") or []:
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
            removed += 1
    for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads") or []:
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.vacuum()
    return removed


def _line(r: dict[str, Any]) -> str:
    return (
        f"  {r['size'] // MiB:5d} MiB {r['mode']:<11} {r['mib_per_s']:7.1f} MiB/s  {r['seconds']:6.2f} s  "
        f"peak RSS {r['peak_rss_mib']:6.1f} MiB  cpu: child {r['cpu_seconds']:5.1f} s, "
        f"s3 {r['s3_cpu_seconds']:5.1f} s, "
        f"sandbox {r['sandbox_cpu_seconds']:5.1f} s, other {r['other_cpu_seconds']:5.1f} s; "
        f"load {r['load_average_1m_before']:.2f}"
    )


def run(
    quick: bool = False, sizes_mib: list[int] | None = None, rounds: int | None = None, profile: bool = False
) -> BenchResult:
    sizes = [s * MiB for s in (sizes_mib or ([32, 256] if quick else [64, 1024]))]
    rounds = rounds or (1 if quick else 3)
    result = BenchResult("copy_throughput")
    work = workdir("copy_throughput")
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {}
    print(f"copy_throughput: sizes {[s // MiB for s in sizes]} MiB, {rounds} round(s); logs in {work}")
    try:
        with MeteredSeaweedS3Server(work, tls=True) as s3, SandboxProcess(log_path=work / "sandbox.log") as sandbox:
            s3.client().create_bucket(Bucket=BUCKET)
            twilio = twilio_client(sandbox)
            probe = SINGLE_PUT_PROBE_MIB * MiB
            days = prepare_days(sandbox, [*sizes, probe])
            for size in sizes:
                runs[size] = _rounds(size, days[size], rounds, twilio, s3, sandbox, work)
            single = measure("copy", twilio.day_link(RESOURCE_TYPE, days[probe]), probe, days[probe], s3, sandbox, work)
            clean_bucket(s3)
            print(_line(single), flush=True)
            if profile:
                result.details["profile"] = _profiles(sizes[-1], days[sizes[-1]], twilio, s3, sandbox, work)
    finally:
        stop_all()
    _figures(result, sizes, runs, single)
    return result


def _rounds(
    size: int, day: str, rounds: int, twilio: Any, s3: MeteredSeaweedS3Server, sandbox: SandboxProcess, work: Path
) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` runs of every mode on one size, the modes' order rotated every round."""
    local = work / f"{RESOURCE_TYPE}-{day}.json.gz"
    _download(twilio.day_link(RESOURCE_TYPE, day), local, size)
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for i in range(rounds):
        for mode in MODES[i % len(MODES) :] + MODES[: i % len(MODES)]:
            source = str(local) if mode == "upload_file" else twilio.day_link(RESOURCE_TYPE, day)
            r = measure(mode, source, size, day, s3, sandbox, work)
            r["objects_deleted_after"] = clean_bucket(s3)
            out[mode].append(r)
            print(_line(r), flush=True)
    local.unlink()
    return out


def _profiles(
    size: int, day: str, twilio: Any, s3: MeteredSeaweedS3Server, sandbox: SandboxProcess, work: Path
) -> dict[str, list[str]]:
    """Not measured: the worker child of ``copy`` and of ``verify_only`` under py-spy (if installed), and SeaweedFS
    during one more ``copy`` (its own Go CPU profile, from a second server started for it)."""
    out = {}
    if py_spy_binary():
        out = {m: _profile(m, size, day, twilio, s3, sandbox, work) for m in ("copy", "verify_only")}
    pprof = work / "seaweedfs-copy.pprof"
    with MeteredSeaweedS3Server(work / "profiled", tls=True, cpuprofile=pprof) as profiled:
        profiled.client().create_bucket(Bucket=BUCKET)
        measure("copy", twilio.day_link(RESOURCE_TYPE, day), size, day, profiled, sandbox, work)
        profiled.finish_profile()
    text = pprof_summary(pprof, top=25)
    (work / "seaweedfs-copy-profile.txt").write_text(text + "\n")
    print(f"--- SeaweedFS CPU profile (its whole life: start, one {size // MiB} MiB copy) ---\n{text}", flush=True)
    out["seaweedfs"] = text.splitlines()
    return out


def _profile(
    mode: str, size: int, day: str, twilio: Any, s3: MeteredSeaweedS3Server, sandbox: SandboxProcess, work: Path
) -> list[str]:
    """One more run of ``mode`` on the largest file under py-spy, every thread (not measured)."""
    out = work / f"{mode}.pyspy.txt"
    measure(mode, twilio.day_link(RESOURCE_TYPE, day), size, day, s3, sandbox, work, profile_to=out)
    clean_bucket(s3)
    text = summarize(out, top=30)
    (work / f"{mode}-profile.txt").write_text(text + "\n")
    print(f"--- py-spy, {mode} {size // MiB} MiB ---\n{text}", flush=True)
    return text.splitlines()


def pooled(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """All rounds of one mode pooled: total bytes / total seconds; CPU, bytes and phases averaged per run."""
    seconds = sum(r["seconds"] for r in rs)
    size = rs[0]["size"]
    phases: dict[str, float] = {}
    for r in rs:
        for k, v in r["phases"].items():
            phases[k] = phases.get(k, 0.0) + v / len(rs)
    keys = ("cpu_seconds", "s3_cpu_seconds", "sandbox_cpu_seconds", "other_cpu_seconds", "s3_received_bytes")
    means = {k: sum(r[k] for r in rs) / len(rs) for k in (*keys, "s3_volume_bytes_added")}
    return {**means, "size": size, "seconds": seconds / len(rs), "mib_per_s": size * len(rs) / MiB / seconds} | {
        "phases": phases,
        "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
        "rss_added_mib": max(r["peak_rss_mib"] - r["rss_before_transfer_mib"] for r in rs),
    }


def per_gib(seconds: float, size: int) -> float:
    return seconds / (size / GiB)


def _figures(
    result: BenchResult, sizes: list[int], runs: dict[int, dict[str, list[dict[str, Any]]]], single: dict[str, Any]
) -> None:
    for size in sizes:
        result.add(*_size_figures(size, {m: pooled(runs[size][m]) for m in MODES}))
    result.add(*rss_figures(sizes, {size: pooled(runs[size]["copy"]) for size in sizes}, single))
    result.details["runs"] = {str(size // MiB): r for size, r in runs.items()}
    result.details["single_put_probe"] = single
    large = pooled(runs[sizes[-1]]["copy"])
    secs = large["seconds"]
    result.details["bound"] = (
        f"{sizes[-1] // MiB} MiB copy: {secs:.1f} s wall; CPU seconds over it: copy child {large['cpu_seconds']:.1f}, "
        f"SeaweedFS {large['s3_cpu_seconds']:.1f}, sandbox {large['sandbox_cpu_seconds']:.1f}, rest of the machine "
        f"{large['other_cpu_seconds']:.1f} (2 cores = {2 * secs:.1f} CPU-s available). Phases: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in large["phases"].items())
    )


def cpu_ceiling(p: dict[str, dict[str, Any]]) -> float:
    """copy / min(a, b) if every mode ran at the speed its CPU allows on CORES cores (the machine to itself).

    A mode's time per byte is at least its CPU (worker + SeaweedFS + sandbox) over the cores, and at least its
    serial part: verify only is one thread (its worker CPU); the copy verifies on one thread too (the same
    work); upload_file's threads and SeaweedFS's goroutines spread over the cores. Measured ratios can exceed it
    a little: no mode spreads perfectly."""

    def total(m: dict[str, Any]) -> float:
        return float(m["cpu_seconds"] + m["s3_cpu_seconds"] + m["sandbox_cpu_seconds"])

    serial = p["verify_only"]["cpu_seconds"]
    t_copy = max(total(p["copy"]) / CORES, serial)
    t_upload = total(p["upload_file"]) / CORES
    t_verify = max(total(p["verify_only"]) / CORES, serial)
    return max(t_upload, t_verify) / t_copy  # min(a, b) is the slower of the two: the longer time


def _size_figures(size: int, p: dict[str, dict[str, Any]]) -> list[Figure]:
    label = f"{size // MiB} MiB"
    copy, upload, verify = p["copy"], p["upload_file"], p["verify_only"]
    bound = min(upload["mib_per_s"], verify["mib_per_s"])
    slower = "upload_file" if upload["mib_per_s"] <= verify["mib_per_s"] else "verify only"
    figures = [
        Figure(f"copy {label}", copy["mib_per_s"], "MiB/s", note="relay: download -> verify -> S3, one pass"),
        Figure(f"(a) upload_file {label}", upload["mib_per_s"], "MiB/s", note="same bytes from local disk, same run"),
        Figure(f"(b) verify only {label}", verify["mib_per_s"], "MiB/s", note="same download and checks, no upload"),
        Figure(
            f"copy / min(a, b) {label}", copy["mib_per_s"] / bound, "x", TARGET_RATIO, ">=", note=f"slower: {slower}"
        ),
        Figure(
            f"copy / min(a, b), CPU-bound ceiling {label}",
            cpu_ceiling(p),
            "x",
            note=f"model from the CPU-s below on {CORES} cores: the best the ratio can be on this machine",
        ),
        Figure(f"copy / upload_file {label}", copy["mib_per_s"] / upload["mib_per_s"], "x", note="informational"),
        Figure(f"copy / verify only {label}", copy["mib_per_s"] / verify["mib_per_s"], "x", note="informational"),
    ]
    for name, m in (("copy", copy), ("upload_file", upload), ("verify only", verify)):
        figures.append(
            Figure(
                f"CPU-s per GiB, {name} {label}",
                per_gib(m["cpu_seconds"], size),
                "s",
                note="the worker process (all threads); SeaweedFS and the sandbox not included",
            )
        )
    for name, m in (("copy", copy), ("upload_file", upload)):
        figures.append(Figure(f"SeaweedFS CPU-s per GiB, {name} {label}", per_gib(m["s3_cpu_seconds"], size), "s"))
    for name, m in (("copy", copy), ("upload_file", upload), ("verify only", verify)):
        total = m["cpu_seconds"] + m["s3_cpu_seconds"] + m["sandbox_cpu_seconds"]
        figures.append(
            Figure(
                f"CPU-s per GiB, all processes, {name} {label}",
                per_gib(total, size),
                "s",
                note="worker + SeaweedFS + sandbox: what the 2 shared cores must supply",
            )
        )
    figures.append(
        Figure(
            f"sandbox CPU-s per GiB, copy {label}",
            per_gib(copy["sandbox_cpu_seconds"], size),
            "s",
            note="serving the download (Python); the same in verify only",
        )
    )
    figures.append(
        Figure(
            f"write amplification, copy {label}",
            copy["s3_received_bytes"] / size,
            "x",
            note="S3 gateway bytes received / file size; volume data grew "
            f"{copy['s3_volume_bytes_added'] / size:.4f} x",
        )
    )
    return figures


def rss_figures(sizes: list[int], copies: dict[int, dict[str, Any]], single: dict[str, Any] | None) -> list[Figure]:
    """Peak worker RSS at the largest size (target), the growth from the smallest (target), the single-PUT buffer."""
    small, large = copies[sizes[0]], copies[sizes[-1]]
    ls, ll = f"{sizes[0] // MiB} MiB", f"{sizes[-1] // MiB} MiB"
    figures = [
        Figure(f"copy worker peak RSS {ll}", large["peak_rss_mib"], "MiB", TARGET_RSS_MIB, "<="),
        Figure(f"copy worker peak RSS {ls}", small["peak_rss_mib"], "MiB"),
        Figure(f"peak RSS {ll} / {ls}", large["peak_rss_mib"] / small["peak_rss_mib"], "x", TARGET_RSS_GROWTH, "<="),
        Figure(
            f"RSS added by the transfer {ll}",
            large["rss_added_mib"],
            "MiB",
            note="VmHWM after - before the copy call (imports and client before it)",
        ),
    ]
    if single is not None:
        mib = single["size"] // MiB
        figures += [
            Figure(f"copy worker peak RSS {mib} MiB (single PUT)", single["peak_rss_mib"], "MiB"),
            Figure(
                f"RSS added by the transfer {mib} MiB (single PUT)",
                single["peak_rss_mib"] - single["rss_before_transfer_mib"],
                "MiB",
                note=f"the whole day in one buffer: S3_SINGLE_PUT_MAX_MIB={mib}, the biggest day sent so",
            ),
        ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes-mib", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--profile", action="store_true", help="copy and verify_only once more under py-spy")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "SOURCE", "SIZE", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, source, size, key = args.child
        _child(mode, source, int(size), key)
        return
    if args.rounds is not None and not 1 <= args.rounds <= 10:
        parser.error("--rounds must be 1..10")
    res = run(args.quick, args.sizes_mib, args.rounds, args.profile)
    print(json.dumps(res.to_json(), indent=2))
    sys.exit(0 if res.passed else 1)


if __name__ == "__main__":
    main()
