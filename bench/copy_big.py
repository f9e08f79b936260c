"""A 5 GiB day end to end: it completes, worker memory stays bounded, and every byte is written to S3 once.

    .venv/bin/python -m bench.copy_big [--gib 5]        # also: bench.run_all --with-5gib (not in the default run)

The same set-up as bench/copy_throughput.py (sandbox day files of realistic gzip JSON lines, SeaweedFS over TLS
with its metrics listener, the relay's copy in a fresh child that imports what the rq worker imports), for one
64 MiB day (the RSS reference: its highest peak of 3 runs, as bench/copy_throughput.py pools its rounds) and
one day of ``--gib`` GiB. A 5 GiB day is a multipart upload of 640 parts
of 8 MiB; nothing of it is held in memory beyond the parts in flight.

Figures: the copy completed (size handed to S3 = Twilio's size, verified by the reader); peak worker RSS
(target <= 150 MiB) and RSS(big)/RSS(64 MiB) (target <= 1.25); **write amplification** from the server's own
counters (bench.seaweed): S3 gateway bytes received for the bucket / file size (target 1.0: no part sent
twice, no staging object, no server-side copy) and, as a cross-check, the growth of the volume servers' data
files / file size (includes ~250 bytes of needle header per chunk); objects made visible at the key (filer
metadata events, target 1); throughput and CPU-s per GiB as information. Takes ~1-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.platform.units import GiB, MiB
from bench.common import BenchResult, Figure, workdir
from bench.copy_throughput import (
    BUCKET,
    RESOURCE_TYPE,
    clean_bucket,
    measure,
    per_gib,
    pooled,
    prepare_days,
    rss_figures,
    twilio_client,
)
from bench.seaweed import MeteredSeaweedS3Server
from devstack.procs import stop_all
from devstack.sandbox_process import SandboxProcess

TARGET_WRITE_AMPLIFICATION = 1.0
REFERENCE = 64 * MiB
REFERENCE_RUNS = 3


def run(quick: bool = False, gib: float | None = None) -> BenchResult:
    size = int((gib or (1 if quick else 5)) * GiB)
    result = BenchResult("copy_5gib" if size == 5 * GiB else f"copy_{size / GiB:g}gib")
    work = workdir("copy_big")
    print(f"copy_big: one {size / GiB:g} GiB day and one 64 MiB reference; logs in {work}", flush=True)
    try:
        with MeteredSeaweedS3Server(work, tls=True) as s3, SandboxProcess(log_path=work / "sandbox.log") as sandbox:
            s3.client().create_bucket(Bucket=BUCKET)
            twilio = twilio_client(sandbox)
            days = prepare_days(sandbox, [REFERENCE, size])
            small = []
            for _ in range(REFERENCE_RUNS):  # peak RSS varies a few MiB with the parts in flight: the highest
                link = twilio.day_link(RESOURCE_TYPE, days[REFERENCE])
                small.append(measure("copy", link, REFERENCE, days[REFERENCE], s3, sandbox, work))
                clean_bucket(s3)
            s3.reset_counts()
            big = measure("copy", twilio.day_link(RESOURCE_TYPE, days[size]), size, days[size], s3, sandbox, work)
            big["visible_writes_at_key"] = s3.writes(BUCKET, big["key"])
            big["objects_deleted_after"] = clean_bucket(s3)
    finally:
        stop_all()
    for r in (*small, big):
        rate, rss = r["mib_per_s"], r["peak_rss_mib"]
        print(f"  {r['size'] // MiB} MiB copy {rate:.1f} MiB/s, peak RSS {rss:.1f} MiB", flush=True)
    result.add(*_figures(size, small, big))
    result.details = {"runs": {"reference": small, "big": big}}
    return result


def _figures(size: int, small: list[dict[str, Any]], big: dict[str, Any]) -> list[Figure]:
    label = f"{size / GiB:g} GiB"
    return [
        Figure(f"copy {label} completed", 1.0 if big["size"] == size else 0.0, "", 1.0, ">=", note="verified size"),
        Figure(f"copy {label}", big["mib_per_s"], "MiB/s"),
        Figure(f"CPU-s per GiB, copy {label}", per_gib(big["cpu_seconds"], size), "s", note="worker process"),
        Figure(f"SeaweedFS CPU-s per GiB, copy {label}", per_gib(big["s3_cpu_seconds"], size), "s"),
        *rss_figures([REFERENCE, size], {REFERENCE: pooled(small), size: pooled([big])}, None),
        Figure(
            f"write amplification {label}",
            big["s3_received_bytes"] / size,
            "x",
            TARGET_WRITE_AMPLIFICATION,
            "<=",
            note="SeaweedFS S3 gateway: bytes received for the bucket / file size",
        ),
        Figure(
            f"volume data written / file size {label}",
            big["s3_volume_bytes_added"] / size,
            "x",
            note="SeaweedFS volume .dat growth (needle headers included): no second copy on disk",
        ),
        Figure(f"objects made visible at the key {label}", big["visible_writes_at_key"], "", 1, "<="),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=5.0, help="size of the big day in GiB (default 5)")
    args = parser.parse_args()
    if not 0.125 <= args.gib <= 20:
        parser.error("--gib must be within 0.125..20")
    res = run(gib=args.gib)
    print(json.dumps(res.to_json(), indent=2))
    sys.exit(0 if res.passed else 1)


if __name__ == "__main__":
    main()
