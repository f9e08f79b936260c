"""Day-file copy throughput and worker memory, against boto3's ``upload_file`` of the same bytes, same run.

    .venv/bin/python -m bench.copy_throughput [--quick] [--sizes-mib 64 1024] [--rounds 2] [--profile]

For each size the Twilio sandbox holds a day file of exactly that many bytes (its files listener plays
Twilio's S3 behind FetchDay's presigned links) and SeaweedFS (``weed mini``, devstack.s3_server) runs over TLS
(botocore then streams request checksums as aws-chunked bodies, as against real S3). Each measurement is a
fresh child interpreter:

- ``copy``: the real code path, ``workers.copy.copy_link_to_s3`` with a fresh link from FetchDay (fetched
  through the service's own ``BulkExportsClient.day_link``) and the worker's sink (``make_s3_client`` +
  ``S3Sink``): download -> VerifyingReader (SHA-256, gzip inflate/CRC, record count) -> multipart upload to
  a staging key -> server-side copy to the final key with the metadata -> read-back check.
- ``upload_file`` (the physical baseline): boto3 ``upload_file`` of the same bytes from a local file, with
  the default TransferConfig and the same client configuration.

Runs alternate copy / upload_file per round so both see the same machine. Throughput is bytes / seconds
of the transfer call only (interpreter start, imports and client creation excluded). Peak RSS is the
child's ``VmHWM`` (its own high-water mark: ``ru_maxrss`` would include the parent's RSS, see
``_vm_hwm_mib``). Objects are deleted after every run and the server's disk reclaimed (``vacuum``). CPU seconds
of the child, the S3 server and the sandbox over each run tell which of them bounds the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

from bench.common import REPO_ROOT, BenchResult, Figure, MiB, child_env, run_json_child, workdir
from bench.profiling import py_spy_binary, summarize
from devstack.procs import python_argv, stop_all
from devstack.relay import local_download_env
from devstack.s3_server import SeaweedS3Server
from devstack.sandbox_process import SandboxProcess

BUCKET = "relay-bench-copy"
RESOURCE_TYPE = "Messages"
TARGET_RATIO = 0.85
TARGET_RSS_MIB = 150.0
TARGET_RSS_GROWTH = 1.25


# -- child side ----------------------------------------------------------------------------------------


def _child(mode: str, source: str, size: int, key: str) -> None:
    """One transfer in this fresh interpreter; prints JSON: seconds, CPU, peak RSS, phase times."""
    from app.s3_client import make_s3_client
    from workers.s3_sink import S3Sink, SinkSettings

    client = make_s3_client()
    bucket = os.environ["BENCH_BUCKET"]
    rss_before = _vm_hwm_mib()
    phases: dict[str, float] = {}
    inflate = ""
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if mode in ("copy", "copy_isal", "copy_zlib"):
        import workers.copy
        from workers.copy import copy_link_to_s3

        if hasattr(workers.copy, "INFLATE"):  # the inflate backend (zlib, or ISA-L when installed)
            workers.copy.INFLATE = _inflate_module(mode)
        inflate = getattr(getattr(workers.copy, "INFLATE", None), "__name__", "?")
        sink = _timed_sink(S3Sink, phases)(client, SinkSettings(bucket=bucket, prefix="twilio/"))
        metadata = {"job_sid": "JSbench", "resource_type": RESOURCE_TYPE, "day": key, "twilio_create_date": ""}
        result = copy_link_to_s3(source, size, sink, sink.day_key(RESOURCE_TYPE, key, "JSbench"), metadata)
        stored_key, stored_size = result.key, result.size
    elif mode == "upload_file":
        stored_key = f"baseline/{key}.json.gz"
        client.upload_file(source, bucket, stored_key)
        stored_size = os.path.getsize(source)
    else:
        raise SystemExit(f"unknown mode {mode}")
    seconds = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    if stored_size != size:
        raise SystemExit(f"{mode} stored {stored_size} bytes, expected {size}")
    print(
        json.dumps(
            {
                "mode": mode,
                "size": size,
                "seconds": seconds,
                "cpu_seconds": (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime),
                "peak_rss_mib": _vm_hwm_mib(),
                "ru_maxrss_mib": usage1.ru_maxrss / 1024,
                "rss_before_transfer_mib": rss_before,
                "phases": phases,
                "inflate": inflate,
                "key": stored_key,
            }
        )
    )


def _vm_hwm_mib() -> float:
    """Peak RSS of this process image (VmHWM). Not ``ru_maxrss``: Linux carries the pre-exec maximum over
    execve, so a child's ru_maxrss is at least the RSS of the parent that forked it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def _inflate_module(mode: str) -> Any:
    """``copy``: the backend requirements.txt ships (ISA-L if ``isal`` is listed, else zlib);
    ``copy_isal`` / ``copy_zlib``: that backend, to measure the other one side by side."""
    import zlib

    if mode == "copy_isal" or (mode == "copy" and shipped_with_isal()):
        from isal import isal_zlib

        return isal_zlib
    return zlib


def shipped_with_isal() -> bool:
    lines = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    return any(line.strip().lower().startswith("isal") for line in lines)


def isal_available() -> bool:
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        return False
    return True


def _timed_sink(base: Any, phases: dict[str, float]) -> Any:
    """S3Sink with its three S3 phases timed; the code that runs is the sink's own."""

    def timed(name: str, method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t0

        return wrapper

    return type(
        "TimedS3Sink",
        (base,),
        {
            "_upload_parts": timed("download+verify+upload parts", base._upload_parts),
            "_complete": timed("complete multipart upload", base._complete),
            "_tag": timed("digest tags", base._tag),
        },
    )


# -- parent side ---------------------------------------------------------------------------------------


def _day(offset: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=offset)).isoformat()


def _twilio_client(sandbox: SandboxProcess) -> Any:
    """The service's own Twilio client (FetchDay without following the 307), pointed at the sandbox."""
    from app.config import load_settings
    from app.twilio_api import BulkExportsClient

    settings = load_settings(
        {
            "TWILIO_ACCOUNT_SID": sandbox.account_sid,
            "TWILIO_AUTH_TOKEN": sandbox.auth_token,
            "TWILIO_BULKEXPORTS_BASE_URL": sandbox.api_url,
            "PUBLIC_BASE_URL": "http://127.0.0.1:9",
            "S3_BUCKET": BUCKET,
            "ADMIN_TOKEN": "bench-admin-token-0123456789",
        }
    )
    return BulkExportsClient(settings)


def _prepare_days(sandbox: SandboxProcess, sizes: list[int]) -> dict[int, str]:
    """One completed sandbox job whose days have exactly the given sizes; returns size -> day."""
    days = {size: _day(3 + i) for i, size in enumerate(sizes)}
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
        p = psutil.Process(pid)
        t = p.cpu_times()
        return float(t.user + t.system)
    except psutil.NoSuchProcess:
        return 0.0


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def _measure(
    mode: str,
    source: str,
    size: int,
    key: str,
    s3: SeaweedS3Server,
    sandbox: SandboxProcess,
    work: Path,
    profile_to: Path | None = None,
) -> dict[str, Any]:
    env = child_env(
        {**s3.env(), "BENCH_BUCKET": BUCKET, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        | local_download_env(sandbox)  # the sandbox's links are http on loopback (app/url_policy.py)
    )
    argv = python_argv("-m", "bench.copy_throughput", "--child", mode, source, str(size), key)
    if profile_to is not None:
        spy = py_spy_binary()
        assert spy is not None
        argv = [spy, "record", "--format", "raw", "--threads", "-r", "100", "-o", str(profile_to), "--", *argv]
    s3_cpu0, sandbox0, machine0 = _cpu(s3.pid), _cpu(sandbox.pid or 0), _machine_busy()
    rss0 = psutil.Process(s3.pid).memory_info().rss
    timeout = 120 + size / MiB * 2  # >= 0.5 MiB/s, far below anything plausible: a bound, not a target
    out = run_json_child(argv, env, timeout, work / f"child-{mode}.log")
    out["s3_cpu_seconds"] = _cpu(s3.pid) - s3_cpu0
    out["sandbox_cpu_seconds"] = _cpu(sandbox.pid or 0) - sandbox0
    # The rest of the machine's busy CPU over the run (includes the child's start-up and anything else running).
    out["other_cpu_seconds"] = max(
        0.0, _machine_busy() - machine0 - out["cpu_seconds"] - out["s3_cpu_seconds"] - out["sandbox_cpu_seconds"]
    )
    out["s3_rss_growth_mib"] = (psutil.Process(s3.pid).memory_info().rss - rss0) / MiB
    out["mib_per_s"] = size / MiB / out["seconds"]
    return out


def _clean_bucket(s3: SeaweedS3Server) -> int:
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


def run(
    quick: bool = False, sizes_mib: list[int] | None = None, rounds: int | None = None, profile: bool = False
) -> BenchResult:
    sizes = [s * MiB for s in (sizes_mib or ([32, 256] if quick else [64, 1024]))]
    rounds = rounds or (1 if quick else 2)
    result = BenchResult("copy_throughput")
    work = workdir("copy_throughput")
    # The inflate backend requirements.txt does not ship, measured side by side when it can be.
    other_backend = "copy_zlib" if shipped_with_isal() else "copy_isal" if isal_available() else None
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {}
    print(f"copy_throughput: sizes {[s // MiB for s in sizes]} MiB, {rounds} round(s); logs in {work}")
    try:
        with SeaweedS3Server(work, tls=True) as s3, SandboxProcess(log_path=work / "sandbox.log") as sandbox:
            s3.client().create_bucket(Bucket=BUCKET)
            twilio = _twilio_client(sandbox)
            days = _prepare_days(sandbox, sizes)
            for size in sizes:
                day = days[size]
                local = work / f"{RESOURCE_TYPE}-{day}.json.gz"
                _download(twilio.day_link(RESOURCE_TYPE, day), local, size)
                modes = ["copy", other_backend, "upload_file"] if other_backend else ["copy", "upload_file"]
                runs[size] = {m: [] for m in modes}
                for _ in range(rounds):
                    for mode in modes:
                        source = str(local) if mode == "upload_file" else twilio.day_link(RESOURCE_TYPE, day)
                        r = _measure(mode, source, size, day, s3, sandbox, work)
                        r["objects_deleted_after"] = _clean_bucket(s3)
                        runs[size][mode].append(r)
                        print(
                            f"  {size // MiB:5d} MiB {mode:<11} {r['mib_per_s']:7.1f} MiB/s  {r['seconds']:6.2f} s  "
                            f"peak RSS {r['peak_rss_mib']:6.1f} MiB  cpu: child {r['cpu_seconds']:5.1f} s, "
                            f"s3 {r['s3_cpu_seconds']:5.1f} s, sandbox {r['sandbox_cpu_seconds']:5.1f} s, "
                            f"other {r['other_cpu_seconds']:5.1f} s",
                            flush=True,
                        )
                local.unlink()
            if profile and py_spy_binary():
                result.details["profile"] = _profile(sizes[-1], days[sizes[-1]], twilio, s3, sandbox, work)
    finally:
        stop_all()
    _figures(result, sizes, runs)
    return result


def _profile(size: int, day: str, twilio: Any, s3: SeaweedS3Server, sandbox: SandboxProcess, work: Path) -> list[str]:
    """One more copy of the largest file under py-spy (not measured): where the copy child spends time."""
    out = work / "copy.pyspy.txt"
    _measure("copy", twilio.day_link(RESOURCE_TYPE, day), size, day, s3, sandbox, work, profile_to=out)
    _clean_bucket(s3)
    text = summarize(out, top=30)
    (work / "copy-profile.txt").write_text(text + "\n")
    print(text, flush=True)
    return text.splitlines()


def _pooled(rs: list[dict[str, Any]]) -> dict[str, Any]:
    """All rounds of one mode pooled: total bytes / total seconds (modes alternate within each round, so
    each mode sees the same share of a noisy machine); phases and CPU summed the same way."""
    seconds = sum(r["seconds"] for r in rs)
    size = rs[0]["size"]
    phases: dict[str, float] = {}
    for r in rs:
        for k, v in r["phases"].items():
            phases[k] = phases.get(k, 0.0) + v / len(rs)
    pooled = {
        k: sum(r[k] for r in rs) / len(rs)
        for k in ("cpu_seconds", "s3_cpu_seconds", "sandbox_cpu_seconds", "other_cpu_seconds")
        if all(k in r for r in rs)
    }
    return {
        **pooled,
        "size": size,
        "seconds": seconds / len(rs),
        "mib_per_s": size * len(rs) / MiB / seconds,
        "phases": phases,
    }


def _figures(result: BenchResult, sizes: list[int], runs: dict[int, dict[str, list[dict[str, Any]]]]) -> None:
    small, large = sizes[0], sizes[-1]
    for size in sizes:
        copy, base = _pooled(runs[size]["copy"]), _pooled(runs[size]["upload_file"])
        label = f"{size // MiB} MiB"
        result.add(
            Figure(f"copy {label}", copy["mib_per_s"], "MiB/s"),
            Figure(f"upload_file {label}", base["mib_per_s"], "MiB/s", note="physical baseline, same run"),
            Figure(f"copy/upload_file {label}", copy["mib_per_s"] / base["mib_per_s"], "x", TARGET_RATIO, ">="),
        )
        for alt, what in (("copy_isal", "ISA-L (not shipped)"), ("copy_zlib", "zlib (not shipped)")):
            if alt in runs[size]:
                other = _pooled(runs[size][alt])
                result.add(
                    Figure(
                        f"copy with {what} inflate/upload_file {label}",
                        other["mib_per_s"] / base["mib_per_s"],
                        "x",
                        note="informational",
                    )
                )
        cpu_copy = copy["cpu_seconds"] + copy["s3_cpu_seconds"] + copy["sandbox_cpu_seconds"]
        cpu_base = base["cpu_seconds"] + base["s3_cpu_seconds"] + base["sandbox_cpu_seconds"]
        result.add(
            Figure(
                f"CPU-s per byte upload_file/copy {label}",
                cpu_base / cpu_copy,
                "x",
                note="child+S3 server+sandbox CPU: the ratio's ceiling when CPU bound, robust to other load",
            )
        )
        staging = copy["phases"].get("download+verify+upload to staging")
        if staging:
            result.add(
                Figure(
                    f"copy staging phase only/upload_file {label}",
                    copy["size"] / MiB / staging / base["mib_per_s"],
                    "x",
                    note="without the server-side copy, which S3 (not the worker) does: informational",
                )
            )
    peak_large = max(r["peak_rss_mib"] for r in runs[large]["copy"])
    peak_small = max(r["peak_rss_mib"] for r in runs[small]["copy"])
    result.add(
        Figure(f"copy worker peak RSS {large // MiB} MiB", peak_large, "MiB", TARGET_RSS_MIB, "<="),
        Figure(f"copy worker peak RSS {small // MiB} MiB", peak_small, "MiB"),
        Figure(
            f"peak RSS {large // MiB} MiB / {small // MiB} MiB", peak_large / peak_small, "x", TARGET_RSS_GROWTH, "<="
        ),
        Figure(
            f"upload_file peak RSS {large // MiB} MiB",
            max(r["peak_rss_mib"] for r in runs[large]["upload_file"]),
            "MiB",
            note="baseline, for comparison",
        ),
    )
    result.details["runs"] = {str(size // MiB): r for size, r in runs.items()}
    result.details["inflate_backend_of_copy"] = "isal" if shipped_with_isal() else "zlib"
    copy_l = _pooled(runs[large]["copy"])
    secs = copy_l["seconds"]
    result.details["bound"] = (
        f"{large // MiB} MiB copy: {secs:.1f} s wall; CPU seconds over it: copy child {copy_l['cpu_seconds']:.1f}, "
        f"s3 {copy_l['s3_cpu_seconds']:.1f}, sandbox {copy_l['sandbox_cpu_seconds']:.1f}, "
        f"rest of the machine {copy_l.get('other_cpu_seconds', float('nan')):.1f} "
        f"(2 cores = {2 * secs:.1f} CPU-s available). Phases: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in copy_l["phases"].items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes-mib", type=int, nargs=2, metavar=("SMALL", "LARGE"))
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--profile", action="store_true", help="one more copy of the largest file under py-spy")
    parser.add_argument("--child", nargs=4, metavar=("MODE", "SOURCE", "SIZE", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, source, size, key = args.child
        _child(mode, source, int(size), key)
        return
    res = run(args.quick, args.sizes_mib, args.rounds, args.profile)
    print(json.dumps(res.to_json(), indent=2))
    sys.exit(0 if res.passed else 1)


if __name__ == "__main__":
    main()
